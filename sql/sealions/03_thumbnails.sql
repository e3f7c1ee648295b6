-- Sea-lion pipeline, step 3: 64x64 training thumbnails, saved to Parquet.
-- Needs 01_tables.sql and 02_dots.sql. Output folder: --set out=DIR.
\set out out/sealions

-- Three thumbnails per dot, centred on it with offsets -1, 0 and +1 px,
-- labelled with the dot's class. The dots (small) are the build side of
-- the join; the images stream past them.
CREATE VIEW dot_thumbnails AS
SELECT d.train_id, d.class AS label, thumbnail(i.image, d.x + o.off, d.y + o.off, 64) AS image
FROM dots d
CROSS JOIN (VALUES (-1), (0), (1)) AS o(off)
JOIN train_images i ON i.name = CAST(d.train_id AS VARCHAR)
WHERE d.class IS NOT NULL;

-- Background: 64x64 tiles with no dot within 8 px of them, one in four
-- (by position, so the choice is the same every run).
CREATE VIEW background_thumbnails AS
SELECT t.train_id, 'background' AS label, t.tile AS image
FROM (
    SELECT CAST(name AS BIGINT) AS train_id, tile['x'] AS x, tile['y'] AS y, tile['tile'] AS tile
    FROM (SELECT name, unnest(tile64(image)) AS tile FROM train_images
          WHERE CAST(name AS BIGINT) NOT IN (SELECT train_id FROM mismatched))
) t
WHERE (t.x / 64 + 3 * (t.y / 64) + t.train_id) % 4 = 0
  AND NOT EXISTS (
    SELECT 1 FROM dots d
    WHERE d.train_id = t.train_id
      AND d.x BETWEEN t.x - 8 AND t.x + 71
      AND d.y BETWEEN t.y - 8 AND t.y + 71);

COPY (
    SELECT train_id, label, image FROM dot_thumbnails
    UNION ALL
    SELECT train_id, label, image FROM background_thumbnails
) TO '${out}/thumbnails.parquet' STORED AS PARQUET;

CREATE EXTERNAL TABLE thumbnails STORED AS PARQUET LOCATION '${out}/thumbnails.parquet';

SELECT label, count(*) AS thumbnails FROM thumbnails GROUP BY label ORDER BY label;
