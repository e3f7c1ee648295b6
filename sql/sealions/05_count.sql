-- Sea-lion pipeline, step 5: count the animals of every test image with the
-- model of step 4 and write Kaggle submissions. Needs 01_tables.sql.
--   sub.csv        the seed's method: non-overlapping 64x64 tiles, one label
--                  per tile, labels counted per image;
--   sub_peaks.csv  one count per animal: overlapping tiles every 16 px, and
--                  an animal where a tile's animal score is the highest of
--                  its neighbours (non-maximum suppression).
\set data data/sealions
\set out out/sealions
\set model ${out}/model.onnx
-- Two peaks closer than this (in pixels, each axis) are one animal.
\set peak_radius 16

-- Every test image's id, so images with no animal found still get a row.
CREATE VIEW test_ids AS SELECT CAST(name AS BIGINT) AS test_id FROM test_images;

-- The seed's method: every non-overlapping tile classified. image_tiles
-- streams the tiles of one frame at a time, 64 a batch (one ONNX Runtime
-- call), so memory does not grow with the frame size or the stride.
CREATE TABLE seed_labels AS
SELECT CAST(name AS BIGINT) AS test_id, cnn_classify('${model}', tile) AS label
FROM image_tiles('${data}/Test/', 64, 64);

-- Overlapping tiles every 16 px, each with its best label and score.
CREATE TABLE grid_scores AS
SELECT CAST(name AS BIGINT) AS test_id, x, y, cnn_scores('${model}', tile)[1] AS best
FROM image_tiles('${data}/Test/', 64, 16);

CREATE VIEW animal_tiles AS
SELECT test_id, x, y, best['label'] AS label, best['score'] AS score
FROM grid_scores WHERE best['label'] <> 'background';

-- A tile counts when no animal tile within peak_radius scores higher
-- (ties go to the top-left one).
CREATE VIEW peak_labels AS
SELECT a.test_id, a.label
FROM animal_tiles a
WHERE NOT EXISTS (
    SELECT 1 FROM animal_tiles b
    WHERE b.test_id = a.test_id
      AND b.x BETWEEN a.x - ${peak_radius} AND a.x + ${peak_radius}
      AND b.y BETWEEN a.y - ${peak_radius} AND a.y + ${peak_radius}
      AND (b.score > a.score OR (b.score = a.score AND (b.y < a.y OR (b.y = a.y AND b.x < a.x)))));

-- Counts per method, image and class, zeros included.
CREATE VIEW counts AS
SELECT m.method, i.test_id,
    coalesce(sum(CASE WHEN l.label = 'adult_males' THEN 1 END), 0) AS adult_males,
    coalesce(sum(CASE WHEN l.label = 'subadult_males' THEN 1 END), 0) AS subadult_males,
    coalesce(sum(CASE WHEN l.label = 'adult_females' THEN 1 END), 0) AS adult_females,
    coalesce(sum(CASE WHEN l.label = 'juveniles' THEN 1 END), 0) AS juveniles,
    coalesce(sum(CASE WHEN l.label = 'pups' THEN 1 END), 0) AS pups
FROM test_ids i
CROSS JOIN (VALUES ('seed_tiles'), ('peaks')) AS m(method)
LEFT JOIN (
    SELECT 'seed_tiles' AS method, test_id, label FROM seed_labels
    UNION ALL
    SELECT 'peaks' AS method, test_id, label FROM peak_labels
) l ON l.test_id = i.test_id AND l.method = m.method
GROUP BY m.method, i.test_id;

COPY (SELECT test_id, adult_males, subadult_males, adult_females, juveniles, pups
      FROM counts WHERE method = 'seed_tiles' ORDER BY test_id)
TO '${out}/sub.csv' STORED AS CSV OPTIONS ('format.has_header' 'true');

COPY (SELECT test_id, adult_males, subadult_males, adult_females, juveniles, pups
      FROM counts WHERE method = 'peaks' ORDER BY test_id)
TO '${out}/sub_peaks.csv' STORED AS CSV OPTIONS ('format.has_header' 'true');

SELECT method, count(*) AS images,
    sum(adult_males) AS adult_males, sum(subadult_males) AS subadult_males,
    sum(adult_females) AS adult_females, sum(juveniles) AS juveniles, sum(pups) AS pups
FROM counts GROUP BY method ORDER BY method;
