//! The workflows behind `rookery augment`, `train` and `crops`, run on a
//! plain Rookery session: what they write, their determinism, and the
//! errors bad input gets.

mod common;

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageFormat};
use rookery::workflows::augment::{augment, parse_steps, AugmentOptions};
use rookery::workflows::crops::{crops, CropsCommand};
use rookery::workflows::train::{train, TrainCommand};
use rookery::{new_session, EngineOptions};

fn session() -> datafusion::prelude::SessionContext {
    new_session(&EngineOptions {
        partitions: Some(2),
        ..Default::default()
    })
    .expect("session")
}

/// Four labelled 40x30 images (three `a`, one `b`) and their label file.
fn labelled_folder(root: &Path) -> (PathBuf, PathBuf) {
    let images = root.join("images");
    std::fs::create_dir_all(&images).unwrap();
    for (i, shade) in [20u8, 60, 100, 200].iter().enumerate() {
        let mut picture = common::gradient(40, 30);
        picture.pixels_mut().for_each(|p| p.0[2] = *shade);
        let format = if i == 3 { ImageFormat::Jpeg } else { ImageFormat::Png };
        let ext = if i == 3 { "jpg" } else { "png" };
        std::fs::write(
            images.join(format!("{i}.{ext}")),
            common::encode(&DynamicImage::ImageRgb8(picture), format),
        )
        .unwrap();
    }
    let labels = root.join("labels.csv");
    std::fs::write(
        &labels,
        "index,filename,label\n0,0.png,a\n1,1.png,a\n2,2.png,a\n3,3.jpg,b\n",
    )
    .unwrap();
    (images, labels)
}

fn options(root: &Path, images: &Path, labels: &Path, out: &str, seed: u32) -> AugmentOptions {
    AugmentOptions {
        input_folder: images.to_path_buf(),
        output_folder: root.join(out),
        label_file: Some(labels.to_path_buf()),
        new_label_file: root.join(format!("{out}.csv")),
        copies: 2,
        seed,
        steps: parse_steps("flip,rotate,crop,jitter,noise").unwrap(),
    }
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn augment_writes_copies_and_balancing_weights_then_trains() {
    let root = tempfile::tempdir().unwrap();
    let (images, labels) = labelled_folder(root.path());
    let first = options(root.path(), &images, &labels, "out1", 7);
    let summary = augment(&session(), &first).await.unwrap();
    assert_eq!((summary.originals, summary.augmented), (4, 8));
    // 9 images of a, 3 of b: weights 12 / (2 x 9) and 12 / (2 x 3).
    assert_eq!(summary.classes.len(), 2);
    assert_eq!((summary.classes[0].1, summary.classes[1].1), (9, 3));
    assert!((summary.classes[0].2 - 2.0 / 3.0).abs() < 1e-9 && (summary.classes[1].2 - 2.0).abs() < 1e-9);

    let written = files(&first.output_folder);
    assert_eq!(written.len(), 12, "{written:?}");
    assert!(written.contains(&"3.jpg".to_string()) && written.contains(&"0_aug2.png".to_string()));
    // The originals are copied byte for byte.
    assert_eq!(
        std::fs::read(images.join("3.jpg")).unwrap(),
        std::fs::read(first.output_folder.join("3.jpg")).unwrap()
    );
    let label_text = std::fs::read_to_string(&first.new_label_file).unwrap();
    let lines: Vec<&str> = label_text.lines().collect();
    assert_eq!(lines[0], "filename,label,weight");
    assert_eq!(lines.len(), 13);
    assert!(lines.contains(&"3_aug1.png,b,2.0"), "{label_text}");
    // Every file the label file names exists.
    for line in &lines[1..] {
        let name = line.split(',').next().unwrap();
        assert!(first.output_folder.join(name).is_file(), "{name}");
    }

    // The same seed gives the same pixels; another seed others.
    let again = options(root.path(), &images, &labels, "out2", 7);
    augment(&session(), &again).await.unwrap();
    let other = options(root.path(), &images, &labels, "out3", 8);
    augment(&session(), &other).await.unwrap();
    let bytes = |o: &AugmentOptions| std::fs::read(o.output_folder.join("1_aug1.png")).unwrap();
    assert_eq!(bytes(&first), bytes(&again));
    assert_ne!(bytes(&first), bytes(&other));
    assert_ne!(
        bytes(&first),
        std::fs::read(first.output_folder.join("1_aug2.png")).unwrap()
    );

    // Training on the augmented folder with its new label file.
    let command = TrainCommand {
        images: first.output_folder.clone(),
        labels: Some(first.new_label_file.clone()),
        output: root.path().join("model.onnx"),
        epochs: Some(1),
        validation: Some(0.25),
        seed: Some(1),
        options: "input_size=24, class_weights=balanced".into(),
    };
    let result = train(&session(), &command).await.unwrap();
    let text = rookery::display::batch_to_strings(&result.batches[0], "NULL").unwrap();
    assert_eq!(text[0][1], "[a, b]");
    assert_eq!((text[0][5].as_str(), text[0][6].as_str()), ("9", "3"));
    assert!(root.path().join("model.onnx").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_named() {
    let root = tempfile::tempdir().unwrap();
    let (images, labels) = labelled_folder(root.path());
    let err = |e: datafusion::error::DataFusionError| e.to_string();

    let mut missing_folder = options(root.path(), &root.path().join("nowhere"), &labels, "o", 1);
    let message = err(augment(&session(), &missing_folder).await.unwrap_err());
    assert!(message.contains("nowhere is not a folder"), "{message}");

    let gone = root.path().join("gone.csv");
    std::fs::write(&gone, "filename,label\n0.png,a\n9.png,b\n8.jpg,b\n").unwrap();
    missing_folder.input_folder = images.clone();
    missing_folder.label_file = Some(gone);
    let message = err(augment(&session(), &missing_folder).await.unwrap_err());
    assert!(
        message.contains("lists 2 image(s) not in") && message.contains("8.jpg, 9.png"),
        "{message}"
    );

    let headless = root.path().join("headless.csv");
    std::fs::write(&headless, "0.png,a\n1.png,b\n").unwrap();
    missing_folder.label_file = Some(headless);
    let message = err(augment(&session(), &missing_folder).await.unwrap_err());
    assert!(
        message.contains("needs a header line with the columns filename and label"),
        "{message}"
    );

    let mut same = options(root.path(), &images, &labels, "o", 1);
    same.output_folder = images.clone();
    let message = err(augment(&session(), &same).await.unwrap_err());
    assert!(message.contains("must not be the input folder"), "{message}");

    let message = err(parse_steps("flip,twirl").unwrap_err());
    assert!(message.contains("unknown augmentation step 'twirl'"), "{message}");

    // One class: cnn_train says so.
    let one = root.path().join("one.csv");
    std::fs::write(&one, "filename,label\n0.png,a\n1.png,a\n").unwrap();
    let command = TrainCommand {
        images: images.clone(),
        labels: Some(one),
        output: root.path().join("m.onnx"),
        epochs: Some(1),
        validation: None,
        seed: None,
        options: String::new(),
    };
    let message = err(train(&session(), &command).await.unwrap_err());
    assert!(message.contains("at least two distinct labels"), "{message}");

    let message = err(crops(
        &session(),
        &CropsCommand {
            dotted: images.clone(),
            plain: images.clone(),
            output_folder: root.path().join("c"),
            size: 0,
        },
    )
    .await
    .unwrap_err());
    assert!(message.contains("--size must be 8 to 1024 pixels, not 0"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crops_cut_one_labelled_thumbnail_per_dot() {
    let root = tempfile::tempdir().unwrap();
    let set = rookery::sealions::GenOptions {
        out: root.path().join("sealions"),
        train: 2,
        test: 0,
        width: 320,
        height: 256,
        seed: 5,
        max_animals: 20,
    };
    rookery::sealions::generate(&set, 2, |_| {}).unwrap();
    let command = CropsCommand {
        dotted: set.out.join("TrainDotted"),
        plain: set.out.join("Train"),
        output_folder: root.path().join("crops"),
        size: 32,
    };
    let counts = crops(&session(), &command).await.unwrap();
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    // train.csv holds the true counts: blob_dots finds (nearly) every dot.
    let truth = std::fs::read_to_string(set.out.join("Train/train.csv")).unwrap();
    let expected: i64 = truth
        .lines()
        .skip(1)
        .flat_map(|l| {
            l.split(',')
                .skip(1)
                .map(|n| n.parse::<i64>().unwrap())
                .collect::<Vec<_>>()
        })
        .sum();
    assert!(
        total > 0 && (expected * 9 / 10..=expected).contains(&total),
        "{total} of {expected}"
    );
    let labels = std::fs::read_to_string(command.output_folder.join("labels.csv")).unwrap();
    assert_eq!(labels.lines().next(), Some("filename,label,source,x,y"));
    assert_eq!(labels.lines().count() as i64, total + 1);
    let first = labels.lines().nth(1).unwrap().split(',').next().unwrap().to_string();
    let crop = image::open(command.output_folder.join(&first)).unwrap();
    assert_eq!((crop.width(), crop.height()), (32, 32));

    let lonely = CropsCommand {
        plain: root.path().join("empty"),
        ..command.clone()
    };
    std::fs::create_dir_all(&lonely.plain).unwrap();
    std::fs::write(
        lonely.plain.join("x.png"),
        common::encode(&DynamicImage::ImageRgb8(common::gradient(8, 8)), ImageFormat::Png),
    )
    .unwrap();
    let message = crops(&session(), &lonely).await.unwrap_err().to_string();
    assert!(
        message.contains("dotted images without a plain image of the same name"),
        "{message}"
    );
}
