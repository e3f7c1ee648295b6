-- 01_tables.sql for a class-per-folder tree: frames/<label>/*.jpg, the
-- layout of torchvision's ImageFolder and Keras' image_dataset_from_directory
-- (each image's label is its folder's name; no label file). Make one with
-- `rookery gen-frames --tree --out data/frame_tree`. Then 02 and 03 as usual:
--   rookery --set data=data/frame_tree -f sql/classify/01_tree_tables.sql sql/classify/02_train.sql sql/classify/03_validate.sql
\set data data/frame_tree

CREATE EXTERNAL TABLE frames STORED AS IMAGES LOCATION '${data}/frames/';

-- The same fixed split as 01_tables.sql: every fifth frame (in path order)
-- is held out for validation.
CREATE VIEW labelled_frames AS
SELECT "index", label, image,
    CASE WHEN "index" % 5 = 0 THEN 'validation' ELSE 'train' END AS split
FROM (
    SELECT row_number() OVER (ORDER BY relative_path) - 1 AS "index", label, image
    FROM frames WHERE label IS NOT NULL
);

SELECT split, label, count(*) AS frames FROM labelled_frames GROUP BY split, label ORDER BY split, label;
