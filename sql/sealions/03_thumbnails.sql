-- Sea-lion pipeline, step 3: 64x64 training thumbnails, saved to Parquet.
-- Needs 01_tables.sql and 02_dots.sql. Output folder: --set out=DIR.
\set data data/sealions
\set out out/sealions

-- Where to cut thumbnails: three per dot, centred on it with offsets -1, 0
-- and +1 px, labelled with the dot's class; and background, the 64x64
-- tiles with no dot within 8 px of them, one in four (by position, so the
-- choice is the same every run). image_tiles without its `tile` column
-- reads only the frames' headers.
CREATE VIEW thumbnail_centres AS
SELECT d.train_id, d.class AS label, d.x + o.off AS cx, d.y + o.off AS cy
FROM dots d
CROSS JOIN (VALUES (-1), (0), (1)) AS o(off)
WHERE d.class IS NOT NULL
UNION ALL
SELECT t.train_id, 'background' AS label, t.x + 32 AS cx, t.y + 32 AS cy
FROM (SELECT CAST(name AS BIGINT) AS train_id, x, y FROM image_tiles('${data}/Train/*.jpg', 64, 64)) t
WHERE (t.x / 64 + 3 * (t.y / 64) + t.train_id) % 4 = 0
  AND t.train_id NOT IN (SELECT train_id FROM mismatched)
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
