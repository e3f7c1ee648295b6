-- Sea-lion pipeline, step 5: count the animals of every test image with the
-- models of step 4 and write Kaggle submissions. Needs 01_tables.sql.
--   sub.csv         the seed's method: non-overlapping 64x64 tiles, one
--                   label per tile, labels counted per image;
--   sub_peaks.csv   one count per animal: the seed CNN's best label at every
--                   position every 16 px (cnn_heatmap, one pass per frame),
--                   an animal where a position's animal score is the
--                   highest of its neighbours (non-maximum suppression);
--   sub_counts.csv  the count model: its counts of every non-overlapping
--                   64x64 tile summed per image.
\set data data/sealions
\set out out/sealions
\set model ${out}/model.onnx
\set count_model ${out}/count_model.onnx
-- Two peaks closer than this (in pixels, each axis) are one animal.
\set peak_radius 16
-- A tile's count of a class below this is taken as 0: the model's ReLU
-- leaves small positive noise on empty tiles, and a frame has thousands.
\set min_tile_count 0.1

-- Every test image's id, so images with no animal found still get a row.
CREATE VIEW test_ids AS SELECT CAST(name AS BIGINT) AS test_id FROM test_images;

-- The seed's method: every non-overlapping tile classified. image_tiles
-- streams the tiles of one frame at a time, 64 a batch (one ONNX Runtime
-- call), so memory does not grow with the frame size or the stride.
CREATE TABLE seed_labels AS
SELECT CAST(name AS BIGINT) AS test_id, cnn_classify('${model}', tile) AS label
FROM image_tiles('${data}/Test/', 64, 64);

-- The best label of a 64x64 tile every 16 px, from one fully convolutional
-- pass per frame (what cnn_scores gives on each tile cut there; tiles over
-- the right and bottom edges are not scored).
CREATE TABLE animal_tiles AS
SELECT CAST(name AS BIGINT) AS test_id, p['x'] AS x, p['y'] AS y, p['label'] AS label, p['score'] AS score
FROM (SELECT name, unnest(cnn_heatmap('${model}', image, 'stride=16, exclude=background')) AS p FROM test_images);

-- The count model on the seed's tiles: its count of each class in each
-- non-overlapping 64x64 tile (those over the edges padded with black),
-- from one fully convolutional pass over each frame (cnn_density gives
-- what cnn_scores gives on each cut tile, and costs about what the seed's
-- count does; README, Dense scoring).
CREATE TABLE tile_counts AS
SELECT test_id, c['label'] AS label, c['count'] AS animals
FROM (SELECT CAST(name AS BIGINT) AS test_id, unnest(cnn_density('${count_model}', image)) AS c
      FROM test_images)
WHERE c['count'] >= ${min_tile_count};

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
    CAST(round(coalesce(sum(CASE WHEN l.label = 'adult_males' THEN l.animals END), 0)) AS BIGINT) AS adult_males,
    CAST(round(coalesce(sum(CASE WHEN l.label = 'subadult_males' THEN l.animals END), 0)) AS BIGINT) AS subadult_males,
    CAST(round(coalesce(sum(CASE WHEN l.label = 'adult_females' THEN l.animals END), 0)) AS BIGINT) AS adult_females,
    CAST(round(coalesce(sum(CASE WHEN l.label = 'juveniles' THEN l.animals END), 0)) AS BIGINT) AS juveniles,
    CAST(round(coalesce(sum(CASE WHEN l.label = 'pups' THEN l.animals END), 0)) AS BIGINT) AS pups
FROM test_ids i
CROSS JOIN (VALUES ('seed_tiles'), ('peaks'), ('count_model')) AS m(method)
LEFT JOIN (
    SELECT 'seed_tiles' AS method, test_id, label, 1.0 AS animals FROM seed_labels
    UNION ALL
    SELECT 'peaks' AS method, test_id, label, 1.0 AS animals FROM peak_labels
    UNION ALL
    SELECT 'count_model' AS method, test_id, label, animals FROM tile_counts
) l ON l.test_id = i.test_id AND l.method = m.method
GROUP BY m.method, i.test_id;

COPY (SELECT test_id, adult_males, subadult_males, adult_females, juveniles, pups
      FROM counts WHERE method = 'seed_tiles' ORDER BY test_id)
TO '${out}/sub.csv' STORED AS CSV OPTIONS ('format.has_header' 'true');

COPY (SELECT test_id, adult_males, subadult_males, adult_females, juveniles, pups
      FROM counts WHERE method = 'peaks' ORDER BY test_id)
TO '${out}/sub_peaks.csv' STORED AS CSV OPTIONS ('format.has_header' 'true');

COPY (SELECT test_id, adult_males, subadult_males, adult_females, juveniles, pups
      FROM counts WHERE method = 'count_model' ORDER BY test_id)
TO '${out}/sub_counts.csv' STORED AS CSV OPTIONS ('format.has_header' 'true');

SELECT method, count(*) AS images,
    sum(adult_males) AS adult_males, sum(subadult_males) AS subadult_males,
    sum(adult_females) AS adult_females, sum(juveniles) AS juveniles, sum(pups) AS pups
FROM counts GROUP BY method ORDER BY method;
