-- Transfer learning, step 1: every frame of data/frames as the features
-- the sea-lion CNN computes for it (the 512 values before its last dense
-- layer), as sparkdl's DeepImageFeaturizer does with an ImageNet model.
-- Needs sql/classify/01_tables.sql (the labelled_frames view) and the
-- sea-lion model of `rookery demo` (or --set featurizer=ANY_ROOKERY_MODEL).
\set featurizer out/sealions/model.onnx

-- now() is each statement's start time: the two tables time the embedding.
CREATE TABLE embed_started AS SELECT now() AS at;
CREATE TABLE frame_features AS
SELECT "index", label, split, cnn_embed('${featurizer}', image) AS features
FROM labelled_frames;
CREATE TABLE embed_finished AS SELECT now() AS at;

SELECT split, count(*) AS frames, min(cardinality(features)) AS features_per_frame
FROM frame_features GROUP BY split ORDER BY split;
