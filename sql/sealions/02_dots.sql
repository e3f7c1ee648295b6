-- Sea-lion pipeline, step 2: every dot as a row, checked against train.csv.
-- Needs 01_tables.sql.

CREATE TABLE dots AS
SELECT train_id, dot['x'] AS x, dot['y'] AS y, dot['class'] AS class
FROM (
    SELECT train_id, unnest(blob_dots(dotted, image_decode(read_blob(plain_path)))) AS dot
    FROM train_pairs
);

-- Per-class counts of the detected dots beside train.csv: one row per
-- image whose counts differ (none when detection is exact). Dots whose
-- colour fits no class are counted in `unclassified`.
CREATE VIEW dot_differences AS
WITH found AS (
    SELECT train_id,
        sum(CASE WHEN class = 'adult_males' THEN 1 ELSE 0 END) AS adult_males,
        sum(CASE WHEN class = 'subadult_males' THEN 1 ELSE 0 END) AS subadult_males,
        sum(CASE WHEN class = 'adult_females' THEN 1 ELSE 0 END) AS adult_females,
        sum(CASE WHEN class = 'juveniles' THEN 1 ELSE 0 END) AS juveniles,
        sum(CASE WHEN class = 'pups' THEN 1 ELSE 0 END) AS pups,
        sum(CASE WHEN class IS NULL THEN 1 ELSE 0 END) AS unclassified
    FROM dots GROUP BY train_id
),
expected AS (
    SELECT * FROM train_counts
    WHERE train_id NOT IN (SELECT train_id FROM mismatched)
)
SELECT e.train_id,
    coalesce(f.adult_males, 0) - e.adult_males AS adult_males,
    coalesce(f.subadult_males, 0) - e.subadult_males AS subadult_males,
    coalesce(f.adult_females, 0) - e.adult_females AS adult_females,
    coalesce(f.juveniles, 0) - e.juveniles AS juveniles,
    coalesce(f.pups, 0) - e.pups AS pups,
    coalesce(f.unclassified, 0) AS unclassified
FROM expected e LEFT JOIN found f ON f.train_id = e.train_id
WHERE coalesce(f.adult_males, 0) <> e.adult_males
   OR coalesce(f.subadult_males, 0) <> e.subadult_males
   OR coalesce(f.adult_females, 0) <> e.adult_females
   OR coalesce(f.juveniles, 0) <> e.juveniles
   OR coalesce(f.pups, 0) <> e.pups
   OR coalesce(f.unclassified, 0) <> 0;

SELECT * FROM dot_differences ORDER BY train_id;

SELECT
    (SELECT count(*) FROM train_counts WHERE train_id NOT IN (SELECT train_id FROM mismatched)) AS images_checked,
    (SELECT count(*) FROM dots) AS dots_found,
    (SELECT count(*) FROM dot_differences) AS images_with_differences;
