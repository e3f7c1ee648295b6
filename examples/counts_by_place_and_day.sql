-- Sea lions per survey day and per 0.1-degree GPS cell, from where and
-- when each aerial frame was taken (its EXIF header; no pixel is decoded)
-- and the per-frame counts of the training labels. Run from the
-- repository root: rookery -f examples/counts_by_place_and_day.sql
CREATE EXTERNAL TABLE frames STORED AS IMAGES LOCATION 'data/sealions/Train/';
CREATE EXTERNAL TABLE counts STORED AS CSV LOCATION 'data/sealions/Train/train.csv'
OPTIONS ('format.has_header' 'true');

SELECT CAST(f.taken_at AS DATE) AS day,
    round(floor(f.gps_lat * 10) / 10, 1) AS lat,
    round(floor(f.gps_lon * 10) / 10, 1) AS lon,
    count(*) AS frames,
    sum(c.adult_males + c.subadult_males + c.adult_females + c.juveniles + c.pups) AS sea_lions,
    sum(c.pups) AS pups
FROM frames f JOIN counts c ON CAST(c.train_id AS VARCHAR) = f.name
WHERE f.taken_at IS NOT NULL
GROUP BY 1, 2, 3
ORDER BY 1, 2, 3;
