-- Sea-lion pipeline, step 6: the competition's metric (the mean over the
-- five classes of the RMSE of per-image counts) for the submissions of
-- step 5 and for the all-zeros submission, against the test truth.
\set data data/sealions
\set out out/sealions

CREATE EXTERNAL TABLE IF NOT EXISTS test_truth STORED AS CSV
LOCATION '${data}/truth/test_counts.csv' OPTIONS ('format.has_header' 'true');
CREATE EXTERNAL TABLE IF NOT EXISTS sub_seed_tiles STORED AS CSV
LOCATION '${out}/sub.csv' OPTIONS ('format.has_header' 'true');
CREATE EXTERNAL TABLE IF NOT EXISTS sub_peaks STORED AS CSV
LOCATION '${out}/sub_peaks.csv' OPTIONS ('format.has_header' 'true');
CREATE EXTERNAL TABLE IF NOT EXISTS sub_counts STORED AS CSV
LOCATION '${out}/sub_counts.csv' OPTIONS ('format.has_header' 'true');

-- Every submission beside the truth, one row per (submission, image). A
-- test image missing from a submission counts as all zeros.
CREATE VIEW submission_errors AS
WITH submissions AS (
    SELECT 'sub.csv (seed tiles)' AS submission, * FROM sub_seed_tiles
    UNION ALL
    SELECT 'sub_peaks.csv (peaks)' AS submission, * FROM sub_peaks
    UNION ALL
    SELECT 'sub_counts.csv (count model)' AS submission, * FROM sub_counts
)
SELECT s.submission, t.test_id,
    coalesce(p.adult_males, 0) - t.adult_males AS adult_males,
    coalesce(p.subadult_males, 0) - t.subadult_males AS subadult_males,
    coalesce(p.adult_females, 0) - t.adult_females AS adult_females,
    coalesce(p.juveniles, 0) - t.juveniles AS juveniles,
    coalesce(p.pups, 0) - t.pups AS pups
FROM test_truth t
CROSS JOIN (SELECT DISTINCT submission FROM submissions) s
LEFT JOIN submissions p ON p.submission = s.submission AND p.test_id = t.test_id
UNION ALL
SELECT 'all zeros' AS submission, test_id,
    -adult_males, -subadult_males, -adult_females, -juveniles, -pups
FROM test_truth;

CREATE VIEW scores AS
SELECT submission, round((am + sm + af + ju + pu) / 5, 3) AS rmse,
    round(am, 3) AS adult_males, round(sm, 3) AS subadult_males, round(af, 3) AS adult_females,
    round(ju, 3) AS juveniles, round(pu, 3) AS pups
FROM (
    SELECT submission,
        sqrt(avg(adult_males * adult_males)) AS am,
        sqrt(avg(subadult_males * subadult_males)) AS sm,
        sqrt(avg(adult_females * adult_females)) AS af,
        sqrt(avg(juveniles * juveniles)) AS ju,
        sqrt(avg(pups * pups)) AS pu
    FROM submission_errors GROUP BY submission
);

SELECT * FROM scores ORDER BY rmse, submission;
