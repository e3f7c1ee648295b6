-- Sea-lion pipeline, step 1: the data set as tables.
-- Run from the repository root; another data folder: --set data=DIR.
\set data data/sealions

-- Train/ also holds train.csv: the glob keeps the images only.
CREATE EXTERNAL TABLE train_images STORED AS IMAGES LOCATION '${data}/Train/*.jpg';
CREATE EXTERNAL TABLE train_dotted STORED AS IMAGES LOCATION '${data}/TrainDotted/';
CREATE EXTERNAL TABLE test_images STORED AS IMAGES LOCATION '${data}/Test/';

CREATE EXTERNAL TABLE train_counts STORED AS CSV
LOCATION '${data}/Train/train.csv' OPTIONS ('format.has_header' 'true');

-- Ids whose dotted copy does not match the plain image: left out below.
CREATE EXTERNAL TABLE mismatched STORED AS CSV
LOCATION '${data}/MismatchedTrainImages.txt' OPTIONS ('format.has_header' 'true');

-- Pairs of a dotted copy and its plain image, by id, without the
-- mismatched ones. The plain image is joined by path and read late
-- (read_blob), and the mismatched ids are left out on the side without
-- pixels (NOT IN collects its left side: on the joined pairs, that would
-- be every dotted frame), so no decoded image waits in a hash table.
CREATE VIEW train_pairs AS
SELECT CAST(d.name AS BIGINT) AS train_id, d.image AS dotted, p.path AS plain_path
FROM (SELECT name, path FROM train_images
      WHERE CAST(name AS BIGINT) NOT IN (SELECT train_id FROM mismatched)) p
JOIN train_dotted d ON d.name = p.name;

SELECT
    (SELECT count(*) FROM train_images) AS train_images,
    (SELECT count(*) FROM train_dotted) AS dotted,
    (SELECT count(*) FROM test_images) AS test_images,
    (SELECT count(*) FROM mismatched) AS mismatched;
