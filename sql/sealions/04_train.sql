-- Sea-lion pipeline, step 4: train the seed CNN on the thumbnails of step 3
-- and write it as ONNX. Needs 03_thumbnails.sql (its Parquet file is enough).
-- Change the length of training with --set epochs=N.
\set out out/sealions
\set epochs 12

CREATE EXTERNAL TABLE IF NOT EXISTS thumbnails STORED AS PARQUET LOCATION '${out}/thumbnails.parquet';

-- Every fifth training image is held out whole: its three thumbnails per
-- dot are near copies of each other, so a random split of thumbnails
-- would validate on what it trained on.
CREATE VIEW held_out_images AS SELECT DISTINCT train_id FROM thumbnails WHERE train_id % 5 = 4;

-- One row: the model's path, classes, training accuracy and time. Random
-- flips and quarter turns: seen from above, animals lie any way round.
CREATE TABLE training AS
SELECT cnn_train(image, label,
    'epochs=${epochs}, batch_size=64, learning_rate=0.001, validation=0, seed=2017, augment=flip+rotate, output=${out}/model.onnx') AS run
FROM thumbnails WHERE train_id NOT IN (SELECT train_id FROM held_out_images);

-- Accuracy on the thumbnails of the held-out images, by the exported model
-- run in ONNX Runtime.
CREATE TABLE validation AS
SELECT label, cnn_classify('${out}/model.onnx', image) AS predicted
FROM thumbnails WHERE train_id IN (SELECT train_id FROM held_out_images);

SELECT t.run['model'] AS model,
    round(t.run['train_accuracy'], 3) AS train_accuracy,
    round(avg(CASE WHEN v.predicted = v.label THEN 1.0 ELSE 0.0 END), 3) AS validation_accuracy,
    count(*) AS validation_thumbnails,
    t.run['epochs'] AS epochs,
    round(t.run['seconds'], 1) AS seconds
FROM training t CROSS JOIN validation v
GROUP BY t.run['model'], t.run['train_accuracy'], t.run['epochs'], t.run['seconds'];
