-- Triage of dive videos: every frame of every clip, classified by the
-- model of 02_train.sql, and the interesting ones written out as PNGs
-- named as the deep-sea team named them (dive_0.mp4_17.png). Make clips
-- with `rookery gen-frames --video --out data/dives` (data/dives/ holds two). Run:
--   rookery --set videos=data/dives/dives/ -f sql/classify/04_video.sql
\set videos data/dives/dives/
\set out out/frames
\set fps 10

CREATE TABLE frame_triage AS
SELECT name, frame_index, timestamp, cnn_classify('${out}/model.onnx', image) AS predicted, image
FROM video_frames('${videos}', 'fps=${fps}');

SELECT name, predicted, count(*) AS frames, round(min(timestamp), 1) AS first_seconds
FROM frame_triage GROUP BY name, predicted ORDER BY name, predicted;

COPY (SELECT name || '.mp4_' || frame_index AS name, image FROM frame_triage WHERE predicted = 'interesting')
TO '${out}/interesting/' STORED AS IMAGES;
