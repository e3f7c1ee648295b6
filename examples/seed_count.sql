-- The seed's count step alone, for benchmarks beside shared/bench's
-- daft_count.py and seed_count.py: every non-overlapping 64x64 tile of the
-- images classified, tiles counted per class and image, Kaggle's CSV.
--   rookery --set images=DIR --set model=M.onnx --set out=sub.csv -f examples/seed_count.sql
\set images data/sealions/Test/
\set model out/sealions/model.onnx
\set out out/sealions/seed_count.csv

COPY (
    SELECT CAST(name AS BIGINT) AS test_id,
        sum(CASE WHEN label = 'adult_males' THEN 1 ELSE 0 END) AS adult_males,
        sum(CASE WHEN label = 'subadult_males' THEN 1 ELSE 0 END) AS subadult_males,
        sum(CASE WHEN label = 'adult_females' THEN 1 ELSE 0 END) AS adult_females,
        sum(CASE WHEN label = 'juveniles' THEN 1 ELSE 0 END) AS juveniles,
        sum(CASE WHEN label = 'pups' THEN 1 ELSE 0 END) AS pups
    FROM (SELECT name, cnn_classify('${model}', tile) AS label FROM image_tiles('${images}', 64, 64))
    GROUP BY name
    ORDER BY test_id
) TO '${out}' STORED AS CSV OPTIONS ('format.has_header' 'true');
