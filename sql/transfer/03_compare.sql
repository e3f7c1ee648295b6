-- Transfer learning, step 3: validation accuracy of the transferred model
-- beside the CNN trained from scratch (sql/classify/02_train.sql and
-- 03_validate.sql, run first in the same session), and the time each took
-- to make. The transferred model takes images like any other.
\set out out/frames

CREATE TABLE transfer_predictions AS
SELECT "index", label, cnn_classify('${out}/transfer.onnx', image) AS predicted
FROM labelled_frames WHERE split = 'validation';

SELECT 'from scratch (cnn_train)' AS method,
    (SELECT round(avg(CASE WHEN predicted = label THEN 1.0 ELSE 0.0 END), 3) FROM frame_predictions) AS validation_accuracy,
    (SELECT round(run['seconds'], 2) FROM frame_training) AS seconds_to_train
UNION ALL
SELECT 'transfer (cnn_embed + linear_train)',
    (SELECT round(avg(CASE WHEN predicted = label THEN 1.0 ELSE 0.0 END), 3) FROM transfer_predictions),
    (SELECT round((CAST(f.at AS BIGINT) - CAST(s.at AS BIGINT)) / 1e9 + h.run['seconds'], 2)
     FROM embed_started s, embed_finished f, head_training h)
ORDER BY method;

SELECT label, predicted, count(*) AS frames
FROM transfer_predictions GROUP BY label, predicted ORDER BY label, predicted;
