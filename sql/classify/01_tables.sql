-- Any labelled folder: deep-sea frame triage (interesting / not_interesting).
-- The folder holds frames/*.jpg and labels.csv (index,filename,label); make
-- one with `rookery gen-frames --out data/frames`, or point --set data=DIR
-- at your own. Run from the repository root:
--   rookery -f sql/classify/01_tables.sql sql/classify/02_train.sql sql/classify/03_validate.sql
\set data data/frames

CREATE EXTERNAL TABLE frames STORED AS IMAGES LOCATION '${data}/frames/';
CREATE EXTERNAL TABLE frame_labels STORED AS CSV
LOCATION '${data}/labels.csv' OPTIONS ('format.has_header' 'true');

-- A fixed split: every fifth frame (by index) is held out for validation.
CREATE VIEW labelled_frames AS
SELECT l."index", l.label, f.image,
    CASE WHEN l."index" % 5 = 0 THEN 'validation' ELSE 'train' END AS split
FROM frame_labels l
-- name is the file name without its extension.
JOIN frames f ON f.name = regexp_replace(l.filename, '\.[A-Za-z0-9]+$', '');

SELECT split, label, count(*) AS frames FROM labelled_frames GROUP BY split, label ORDER BY split, label;
