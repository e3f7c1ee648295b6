-- Sea-lion pipeline, optional step 7: the int8 form of the model of step 4
-- (cnn_quantize, calibrated on the training thumbnails), and how often it
-- labels a test tile differently from the float model. Needs 01_tables.sql
-- and 03_thumbnails.sql's Parquet file. To count and score with it:
--   rookery --set model=out/sealions/model.int8.onnx --set out=out/int8 \
--       -f sql/sealions/01_tables.sql sql/sealions/05_count.sql sql/sealions/06_score.sql
\set data data/sealions
\set out out/sealions
\set model ${out}/model.onnx

CREATE EXTERNAL TABLE IF NOT EXISTS thumbnails STORED AS PARQUET LOCATION '${out}/thumbnails.parquet';

-- Calibration: every training thumbnail (activation ranges are a min and a max).
CREATE TABLE int8_model AS
SELECT cnn_quantize('${model}', image, 'output=${out}/model.int8.onnx') AS path
FROM thumbnails;

SELECT path AS int8_model FROM int8_model;

-- Both models on every tile of the test images (stride 32).
CREATE TABLE int8_agreement AS
SELECT cnn_classify('${model}', tile) AS float_label, cnn_classify('${out}/model.int8.onnx', tile) AS int8_label
FROM image_tiles('${data}/Test/', 64, 32);

SELECT count(*) AS tiles,
    sum(CASE WHEN float_label <> int8_label THEN 1 ELSE 0 END) AS changed,
    round(100.0 * avg(CASE WHEN float_label <> int8_label THEN 1.0 ELSE 0.0 END), 2) AS changed_percent
FROM int8_agreement;
