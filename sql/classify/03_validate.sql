-- Validation accuracy of the model of 02_train.sql on the held-out split,
-- with the confusion counts. Needs 01_tables.sql.
\set out out/frames

CREATE TABLE frame_predictions AS
SELECT "index", label, cnn_classify('${out}/model.onnx', image) AS predicted
FROM labelled_frames WHERE split = 'validation';

SELECT count(*) AS frames,
    round(avg(CASE WHEN predicted = label THEN 1.0 ELSE 0.0 END), 3) AS validation_accuracy
FROM frame_predictions;

SELECT label, predicted, count(*) AS frames
FROM frame_predictions GROUP BY label, predicted ORDER BY label, predicted;
