-- Train the CNN on the training split (frames are resized to 64x64).
-- Needs 01_tables.sql. Output folder: --set out=DIR.
\set out out/frames
\set epochs 8

CREATE TABLE frame_training AS
SELECT cnn_train(image, label,
    'epochs=${epochs}, batch_size=16, validation=0, seed=1, augment=flip, class_weights=balanced, output=${out}/model.onnx') AS run
FROM labelled_frames WHERE split = 'train';

SELECT run['model'] AS model, run['classes'] AS classes,
    round(run['train_accuracy'], 3) AS train_accuracy, round(run['seconds'], 1) AS seconds
FROM frame_training;
