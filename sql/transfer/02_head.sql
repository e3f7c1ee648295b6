-- Transfer learning, step 2: a softmax regression on the training split's
-- features, written on top of the featurizer as one ONNX model that takes
-- images. Needs 01_embed.sql. Output folder: --set out=DIR.
\set featurizer out/sealions/model.onnx
\set out out/frames

CREATE TABLE head_training AS
SELECT linear_train(features, label,
    'featurizer=${featurizer}, output=${out}/transfer.onnx, validation=0, class_weights=balanced, seed=1') AS run
FROM frame_features WHERE split = 'train';

SELECT run['model'] AS model, run['classes'] AS classes,
    round(run['train_accuracy'], 3) AS train_accuracy, round(run['seconds'], 2) AS seconds
FROM head_training;
