-- Sea-lion pipeline, step 4: train the seed CNN on the thumbnails of step 3,
-- and the count model on its count tiles, and write both as ONNX. Needs
-- 03_thumbnails.sql (its Parquet files are enough). Change the length of
-- training with --set epochs=N (both models; the count model trains 15
-- epochs by default).
\set out out/sealions
\set epochs 12
\set count_epochs 15

CREATE EXTERNAL TABLE IF NOT EXISTS thumbnails STORED AS PARQUET LOCATION '${out}/thumbnails.parquet';
CREATE EXTERNAL TABLE IF NOT EXISTS count_tiles STORED AS PARQUET LOCATION '${out}/count_tiles.parquet';

-- One row: the model's path, classes, accuracies and time. Random flips
-- and quarter turns: seen from above, animals lie any way round.
-- The validation accuracy is of 20 % of the thumbnails held out at random.
-- It flatters the model: the three thumbnails of a dot (offsets -1, 0, +1)
-- are near copies and can fall on both sides. Holding out whole images
-- instead (train_id % 5 = 4) gives the same accuracy on the thumbnails but
-- a worse model on the test images (RMSE about 3.9 instead of 2.5): with 27
-- training images every image counts. 06_score.sql measures what matters.
CREATE TABLE training AS
SELECT cnn_train(image, label,
    'epochs=${epochs}, batch_size=64, learning_rate=0.001, validation=0.2, seed=2017, augment=flip+rotate, output=${out}/model.onnx') AS run
FROM thumbnails;

SELECT run['model'] AS model,
    round(run['train_accuracy'], 3) AS train_accuracy,
    round(run['validation_accuracy'], 3) AS validation_accuracy,
    run['epochs'] AS epochs,
    round(run['seconds'], 1) AS seconds
FROM training;

-- The count model: the same layers, five outputs (one per class) trained
-- on how many animals of each class have their centre in a tile (a struct
-- of counts as the label makes cnn_train train counts, with squared
-- error). Validation holds out whole training images (the group), and
-- keep=best finds the epoch with the lowest validation loss. With eight
-- training images one held-out image can hold most of a rare class (on
-- one fresh full-size set, 10 of 13 subadult males), so refit=true then
-- trains again on every image for that many epochs: validation chooses
-- how long to train, and no image is left out. Flips and quarter turns
-- keep a tile's counts.
CREATE TABLE count_training AS
SELECT cnn_train(image,
    named_struct('adult_males', adult_males, 'subadult_males', subadult_males,
                 'adult_females', adult_females, 'juveniles', juveniles, 'pups', pups),
    'epochs=${count_epochs}, batch_size=64, learning_rate=0.001, validation=0.2, keep=best, refit=true, schedule=cosine, seed=2017, augment=flip+rotate, output=${out}/count_model.onnx',
    CAST(train_id AS VARCHAR)) AS run
FROM count_tiles;

SELECT run['model'] AS model,
    round(run['validation_loss'], 4) AS validation_loss,
    run['kept_epoch'] AS kept_epoch,
    run['epochs'] AS epochs,
    run['validation_rows'] AS validation_rows,
    run['train_rows'] AS refit_rows,
    round(run['seconds'], 1) AS seconds
FROM count_training;
