-- Sea-lion pipeline, optional step 8: 05's peaks count with every frame
-- scored in one pass. cnn_heatmap runs the model fully convolutionally
-- (its dense layers as convolutions) and gives the best label of every
-- tile position at a 16 px stride, the positions 05 cuts tiles for, with
-- the same scores; only 05's zero-padded tiles over the right and bottom
-- edges are not scored. Needs 01_tables.sql, 04's model and the truth;
-- writes sub_heatmap.csv and prints its score.
\set data data/sealions
\set out out/sealions
\set model ${out}/model.onnx
\set peak_radius 16

CREATE TABLE heatmap_tiles AS
SELECT CAST(name AS BIGINT) AS test_id, p['x'] AS x, p['y'] AS y, p['label'] AS label, p['score'] AS score
FROM (SELECT name, unnest(cnn_heatmap('${model}', image, 'stride=16, exclude=background')) AS p FROM test_images);

-- Non-maximum suppression, as in 05_count.sql.
CREATE VIEW heatmap_peaks AS
SELECT a.test_id, a.label
FROM heatmap_tiles a
WHERE NOT EXISTS (
    SELECT 1 FROM heatmap_tiles b
    WHERE b.test_id = a.test_id
      AND b.x BETWEEN a.x - ${peak_radius} AND a.x + ${peak_radius}
      AND b.y BETWEEN a.y - ${peak_radius} AND a.y + ${peak_radius}
      AND (b.score > a.score OR (b.score = a.score AND (b.y < a.y OR (b.y = a.y AND b.x < a.x)))));

CREATE TABLE heatmap_counts AS
SELECT i.test_id,
    coalesce(sum(CASE WHEN p.label = 'adult_males' THEN 1 END), 0) AS adult_males,
    coalesce(sum(CASE WHEN p.label = 'subadult_males' THEN 1 END), 0) AS subadult_males,
    coalesce(sum(CASE WHEN p.label = 'adult_females' THEN 1 END), 0) AS adult_females,
    coalesce(sum(CASE WHEN p.label = 'juveniles' THEN 1 END), 0) AS juveniles,
    coalesce(sum(CASE WHEN p.label = 'pups' THEN 1 END), 0) AS pups
FROM (SELECT CAST(name AS BIGINT) AS test_id FROM test_images) i
LEFT JOIN heatmap_peaks p ON p.test_id = i.test_id
GROUP BY i.test_id;

COPY (SELECT * FROM heatmap_counts ORDER BY test_id)
TO '${out}/sub_heatmap.csv' STORED AS CSV OPTIONS ('format.has_header' 'true');

-- The competition's metric, as 06_score.sql computes it.
CREATE EXTERNAL TABLE IF NOT EXISTS test_truth STORED AS CSV
LOCATION '${data}/truth/test_counts.csv' OPTIONS ('format.has_header' 'true');

SELECT 'sub_heatmap.csv (heatmap peaks)' AS submission,
    round((sqrt(avg(am)) + sqrt(avg(sm)) + sqrt(avg(af)) + sqrt(avg(ju)) + sqrt(avg(pu))) / 5, 3) AS rmse
FROM (
    SELECT power(coalesce(c.adult_males, 0) - t.adult_males, 2) AS am,
        power(coalesce(c.subadult_males, 0) - t.subadult_males, 2) AS sm,
        power(coalesce(c.adult_females, 0) - t.adult_females, 2) AS af,
        power(coalesce(c.juveniles, 0) - t.juveniles, 2) AS ju,
        power(coalesce(c.pups, 0) - t.pups, 2) AS pu
    FROM test_truth t LEFT JOIN heatmap_counts c ON c.test_id = t.test_id
);
