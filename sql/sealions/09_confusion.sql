-- Sea-lion pipeline, optional step 9: which classes the CNN confuses, on
-- thumbnails of training images it never saw. Needs 01_tables.sql and
-- 03_thumbnails.sql's Parquet file. Every fifth training image is held
-- out whole, so the three offsets of one dot never fall on both sides.
\set out out/sealions
\set epochs 12

CREATE EXTERNAL TABLE IF NOT EXISTS thumbnails STORED AS PARQUET LOCATION '${out}/thumbnails.parquet';

-- cnn_train's own validation also holds out whole images (the group
-- argument), and keep=best keeps the epoch that did best on them.
CREATE TABLE heldout_training AS
SELECT cnn_train(image, label,
    'epochs=${epochs}, batch_size=64, validation=0.2, keep=best, seed=2017, augment=flip+rotate, output=${out}/model_heldout.onnx',
    CAST(train_id AS VARCHAR)) AS run
FROM thumbnails WHERE train_id % 5 <> 4;

SELECT run['kept_epoch'] AS kept_epoch, run['epochs'] AS epochs,
    round(run['validation_accuracy'], 3) AS validation_accuracy, run['validation_rows'] AS validation_rows
FROM heldout_training;

CREATE TABLE heldout_predictions AS
SELECT train_id, label, cnn_classify('${out}/model_heldout.onnx', image) AS predicted
FROM thumbnails WHERE train_id % 5 = 4;

-- The confusion matrix: a row per true class, a column per answer.
SELECT label AS truth, count(*) AS thumbnails,
    sum(CASE WHEN predicted = 'adult_males' THEN 1 ELSE 0 END) AS adult_males,
    sum(CASE WHEN predicted = 'subadult_males' THEN 1 ELSE 0 END) AS subadult_males,
    sum(CASE WHEN predicted = 'adult_females' THEN 1 ELSE 0 END) AS adult_females,
    sum(CASE WHEN predicted = 'juveniles' THEN 1 ELSE 0 END) AS juveniles,
    sum(CASE WHEN predicted = 'pups' THEN 1 ELSE 0 END) AS pups,
    sum(CASE WHEN predicted = 'background' THEN 1 ELSE 0 END) AS background,
    round(avg(CASE WHEN predicted = label THEN 1.0 ELSE 0.0 END), 3) AS recall
FROM heldout_predictions GROUP BY label ORDER BY label;
