-- Sea-lion pipeline, step 3: 64x64 training thumbnails for the seed CNN
-- and 64x64 count tiles for the count model, saved to Parquet.
-- Needs 01_tables.sql and 02_dots.sql. Output folder: --set out=DIR.
\set data data/sealions
\set out out/sealions

-- Where to cut thumbnails: three per dot, centred on it with offsets -1, 0
-- and +1 px, labelled with the dot's class; and background, the 64x64
-- tiles with no dot within 8 px of them, one in four (by position, so the
-- choice is the same every run), within the labelled part of the frame
-- (02_dots.sql's labelled_frames). image_tiles without its `tile` column
-- reads only the frames' headers.
CREATE VIEW thumbnail_centres AS
SELECT d.train_id, d.class AS label, d.x + o.off AS cx, d.y + o.off AS cy
FROM dots d
CROSS JOIN (VALUES (-1), (0), (1)) AS o(off)
WHERE d.class IS NOT NULL
UNION ALL
SELECT t.train_id, 'background' AS label, t.x + 32 AS cx, t.y + 32 AS cy
FROM (SELECT CAST(name AS BIGINT) AS train_id, x, y FROM image_tiles('${data}/Train/*.jpg', 64, 64)) t
JOIN labelled_frames f ON f.train_id = t.train_id
    AND t.x >= f.x0 AND t.y >= f.y0 AND t.x + 64 <= f.x1 AND t.y + 64 <= f.y1
WHERE (t.x / 64 + 3 * (t.y / 64) + t.train_id) % 4 = 0
  AND NOT EXISTS (
    SELECT 1 FROM dots d
    WHERE d.train_id = t.train_id
      AND d.x BETWEEN t.x - 8 AND t.x + 71
      AND d.y BETWEEN t.y - 8 AND t.y + 71);

-- The thumbnails: each frame is decoded once and streams past its centres
-- (the small side of the join). Rows of one frame share its pixels (the
-- image value's data is a view), so the join copies no frame.
COPY (
    SELECT c.train_id, c.label, thumbnail(i.image, c.cx, c.cy, 64) AS image
    FROM thumbnail_centres c
    JOIN train_images i ON i.name = CAST(c.train_id AS VARCHAR)
) TO '${out}/thumbnails.parquet' STORED AS PARQUET;

CREATE EXTERNAL TABLE thumbnails STORED AS PARQUET LOCATION '${out}/thumbnails.parquet';

SELECT label, count(*) AS thumbnails FROM thumbnails GROUP BY label ORDER BY label;

-- Count tiles, for the count model (04): 64x64 tiles on a 32 px grid,
-- each with how many dots of each class have their centre inside it. The
-- tiles near a dot (a 4x4 block of grid places around it) are all kept:
-- those holding it, and those beside it that show part of the animal but
-- must count 0. Of the other tiles one in 32 is kept (by position). Tiles
-- reach past the labelled part of a realigned frame only where a frame
-- has no cut.
CREATE VIEW count_tile_hits AS
SELECT train_id, x, y,
    sum(CASE WHEN inside AND class = 'adult_males' THEN 1 ELSE 0 END) AS adult_males,
    sum(CASE WHEN inside AND class = 'subadult_males' THEN 1 ELSE 0 END) AS subadult_males,
    sum(CASE WHEN inside AND class = 'adult_females' THEN 1 ELSE 0 END) AS adult_females,
    sum(CASE WHEN inside AND class = 'juveniles' THEN 1 ELSE 0 END) AS juveniles,
    sum(CASE WHEN inside AND class = 'pups' THEN 1 ELSE 0 END) AS pups
FROM (
    SELECT d.train_id, d.class,
        (CAST(d.x AS BIGINT) / 32 - i) * 32 AS x, (CAST(d.y AS BIGINT) / 32 - j) * 32 AS y,
        i IN (0, 1) AND j IN (0, 1) AS inside
    FROM dots d
    CROSS JOIN (VALUES (-1), (0), (1), (2)) AS oi(i)
    CROSS JOIN (VALUES (-1), (0), (1), (2)) AS oj(j)
    WHERE d.class IS NOT NULL
)
GROUP BY train_id, x, y;

CREATE VIEW count_tile_places AS
SELECT t.train_id, t.x, t.y,
    coalesce(h.adult_males, 0) AS adult_males, coalesce(h.subadult_males, 0) AS subadult_males,
    coalesce(h.adult_females, 0) AS adult_females, coalesce(h.juveniles, 0) AS juveniles,
    coalesce(h.pups, 0) AS pups
FROM (SELECT CAST(name AS BIGINT) AS train_id, CAST(x AS BIGINT) AS x, CAST(y AS BIGINT) AS y
      FROM image_tiles('${data}/Train/*.jpg', 64, 32)) t
JOIN labelled_frames f ON f.train_id = t.train_id
    AND t.x >= f.x0 AND t.y >= f.y0 AND t.x + 64 <= f.x1 AND t.y + 64 <= f.y1
LEFT JOIN count_tile_hits h ON h.train_id = t.train_id AND h.x = t.x AND h.y = t.y
WHERE (h.train_id IS NOT NULL OR (t.x / 32 * 7 + t.y / 32 * 3 + t.train_id) % 32 = 0);

-- crop pads with black past the right and bottom edges, as image_tiles does.
COPY (
    SELECT c.train_id, c.x, c.y, c.adult_males, c.subadult_males, c.adult_females, c.juveniles, c.pups,
        crop(i.image, c.x, c.y, 64, 64) AS image
    FROM count_tile_places c
    JOIN train_images i ON i.name = CAST(c.train_id AS VARCHAR)
) TO '${out}/count_tiles.parquet' STORED AS PARQUET;

CREATE EXTERNAL TABLE count_tiles STORED AS PARQUET LOCATION '${out}/count_tiles.parquet';

SELECT count(*) AS count_tiles,
    sum(CASE WHEN adult_males + subadult_males + adult_females + juveniles + pups > 0 THEN 1 ELSE 0 END) AS with_animals
FROM count_tiles;
