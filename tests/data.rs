//! CIFAR-10 reading, the train/validation split, augmentation parameters (torchvision
//! semantics), the augmentation shader against its CPU twin, and the download path against a
//! local HTTP server.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use common::{gpu, rng};
use rand::seq::SliceRandom;
use rand::Rng;
use wgpu_cnn::data::{self, Crop, GpuDataset, Split, IMAGE_BYTES, RECORD_BYTES};
use wgpu_cnn::ops::augment::gpu as augment;

/// `n` records with random bytes and labels `i % 10`.
fn records(n: usize, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let mut out = Vec::with_capacity(n * RECORD_BYTES);
    for i in 0..n {
        out.push((i % 10) as u8);
        out.extend((0..IMAGE_BYTES).map(|_| r.random::<u8>()));
    }
    out
}

#[test]
fn parses_records_and_rejects_bad_files() {
    let bytes = records(3, 1);
    let s = data::parse_records(&bytes, "x.bin").unwrap();
    assert_eq!(s.len(), 3);
    assert_eq!(s.labels, vec![0, 1, 2]);
    // Planar in the file, interleaved HWC in memory.
    let planar = &bytes[RECORD_BYTES + 1..2 * RECORD_BYTES];
    for p in [0, 1, 517, 1023] {
        for c in 0..3 {
            assert_eq!(s.image(1)[p * 3 + c], planar[c * 1024 + p]);
        }
    }

    let err = data::parse_records(&bytes[..bytes.len() - 1], "x.bin")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("x.bin") && err.contains("multiple of the 3073-byte"),
        "{err}"
    );
    let err = data::parse_records(&[], "x.bin").unwrap_err().to_string();
    assert!(err.contains("empty"), "{err}");
    let mut bad = bytes.clone();
    bad[2 * RECORD_BYTES] = 12;
    let err = data::parse_records(&bad, "x.bin").unwrap_err().to_string();
    assert!(
        err.contains("record 2") && err.contains("label byte 12"),
        "{err}"
    );
}

#[test]
fn split_is_seeded_disjoint_and_complete() {
    let (t, v) = data::split_indices(1000, 100, 42);
    assert_eq!((t.len(), v.len()), (900, 100));
    let mut all: Vec<u32> = t.iter().chain(&v).cloned().collect();
    all.sort();
    assert_eq!(all, (0..1000).collect::<Vec<_>>());
    assert_eq!(data::split_indices(1000, 100, 42), (t.clone(), v.clone()));
    assert_ne!(data::split_indices(1000, 100, 43).1, v);
    // No validation: file order.
    assert_eq!(data::split_indices(5, 0, 42).0, vec![0, 1, 2, 3, 4]);
}

const CIFAR: data::ImageShape = data::ImageShape { h: 32, w: 32, c: 3 };

fn seed_augment() -> data::Augment {
    data::augment::AugmentConfig::default().parsed().unwrap()
}

#[test]
fn random_resized_crop_follows_torchvision() {
    let mut r = rng(2);
    let mut flips = 0;
    let aug = seed_augment();
    for i in 0..5000 {
        let c = aug.draw(&mut r, i, CIFAR);
        flips += c.flip as u32;
        assert!(c.h >= 1 && c.w >= 1 && c.top >= 0 && c.left >= 0, "{c:?}");
        assert!(
            c.top as u32 + c.h <= 32 && c.left as u32 + c.w <= 32,
            "{c:?}"
        );
        // Area in [0.8, 1.0]·1024 and aspect ratio in [0.9, 1.1] up to the rounding of sides.
        let area = (c.h * c.w) as f64;
        assert!(
            (0.8 * 1024.0 - 2.0 * 32.0..=1024.0).contains(&area),
            "{c:?}"
        );
        let ratio = c.w as f64 / c.h as f64;
        assert!((0.9 - 0.04..=1.1 + 0.04).contains(&ratio), "{c:?}");
    }
    assert!((2300..2700).contains(&flips), "flip rate {flips}/5000");
    let rrc = data::augment::random_resized_crop;
    // Scale 1 and ratio 1: the only crop is the whole image.
    assert_eq!(
        rrc(&mut r, CIFAR, (1.0, 1.0 + 1e-12), (1.0, 1.0 + 1e-12)),
        (0, 0, 32, 32)
    );
    // Impossible scale: the fallback central crop, clamped to the ratio range.
    assert_eq!(rrc(&mut r, CIFAR, (5.0, 6.0), (0.9, 1.1)), (0, 0, 32, 32));
    assert_eq!(rrc(&mut r, CIFAR, (5.0, 6.0), (2.0, 3.0)), (8, 0, 16, 32));
    // A rectangular image: the fallback keeps the ratio range.
    let wide = data::ImageShape { h: 10, w: 40, c: 1 };
    assert_eq!(rrc(&mut r, wide, (5.0, 6.0), (0.9, 1.1)), (0, 14, 10, 11));
}

#[test]
fn augment_lists_parse_and_draw_within_bounds() {
    let parse = |s: &str| data::Augment::parse(s, (0.8, 1.0), (0.9, 1.1));
    assert_eq!(parse("rrc,flip").unwrap().canonical(), "flip,rrc");
    assert_eq!(parse("crop:4,flip").unwrap().canonical(), "flip,crop:4");
    assert_eq!(
        parse("crop:4:reflect").unwrap().canonical(),
        "crop:4:reflect"
    );
    assert_eq!(parse("translate:3").unwrap().canonical(), "translate:3");
    assert_eq!(parse("none").unwrap().canonical(), "none");
    for (bad, says) in [
        ("blur", "unknown augmentation `blur`"),
        ("crop:x", "not a pixel count"),
        ("rrc,crop:4", "at most one of"),
        ("none,flip", "cannot be combined"),
        ("flip,flip", "twice"),
    ] {
        let err = parse(bad).unwrap_err().to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
    let small = data::ImageShape { h: 5, w: 7, c: 1 };
    assert!(parse("crop:5:reflect").unwrap().check(small).is_err());
    assert!(parse("crop:4:reflect").unwrap().check(small).is_ok());

    // Pad-4 crops: offsets uniform over [-4, 4], the window the image's size.
    let mut r = rng(9);
    let crop = parse("crop:4,flip").unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..4000 {
        let c = crop.draw(&mut r, i, CIFAR);
        assert!(
            (-4..=4).contains(&c.top) && (-4..=4).contains(&c.left),
            "{c:?}"
        );
        assert_eq!((c.h, c.w, c.fill), (32, 32, data::Fill::Zero));
        seen.insert((c.top, c.left));
    }
    assert_eq!(seen.len(), 81, "every offset drawn");
    let t = parse("translate:2").unwrap().draw(&mut r, 0, CIFAR);
    assert_eq!(t.fill, data::Fill::Mean);
    // The seed's list draws exactly the seed's sequence (flip, then RandomResizedCrop).
    let (mut a, mut b) = (rng(11), rng(11));
    let seed = seed_augment();
    for i in 0..100 {
        let c = seed.draw(&mut a, i, CIFAR);
        let flip = rand::Rng::random_bool(&mut b, 0.5);
        let (top, left, h, w) =
            data::augment::random_resized_crop(&mut b, CIFAR, (0.8, 1.0), (0.9, 1.1));
        assert_eq!(
            (c.flip, c.top, c.left, c.h, c.w),
            (flip, top as i32, left as i32, h, w)
        );
    }
}

/// Random HWC images of `shape` with labels `i % classes`.
fn random_split(n: usize, shape: data::ImageShape, classes: u32, seed: u64) -> Split {
    let mut r = rng(seed);
    Split {
        shape,
        images: (0..n * shape.bytes()).map(|_| r.random::<u8>()).collect(),
        labels: (0..n as u32).map(|i| i % classes).collect(),
    }
}

/// Runs the augmentation shader on `crops` of `ds` (uploaded from `split`) and compares it
/// bit for bit with the CPU twin; returns the GPU's output.
fn check_augment(
    gpu: &wgpu_cnn::gpu::Gpu,
    split: &Split,
    ds: &GpuDataset,
    crops: &[Crop],
    norm: &data::Normalization,
    what: &str,
) -> Vec<f32> {
    let batch = crops.len() as u32;
    let per = split.shape.bytes();
    let words: Vec<[u32; 8]> = crops.iter().map(|c| c.words()).collect();
    let crop_buf = gpu.storage_from("crops", &words);
    let input = gpu.storage("input", crops.len() * per);
    let labels = gpu.storage("labels", crops.len());
    let d = augment::batch(
        gpu,
        batch,
        ds,
        norm,
        (&crop_buf).into(),
        (&input).into(),
        (&labels).into(),
    );
    gpu.run(&[&d]).unwrap();
    let got = gpu.read_f32(&input).unwrap();
    let mut want = vec![0f32; got.len()];
    for (i, c) in crops.iter().enumerate() {
        wgpu_cnn::ops::augment::cpu::augment_image(
            split.image(c.record as usize),
            split.shape,
            norm,
            c,
            &mut want[i * per..(i + 1) * per],
        );
    }
    let bad = got
        .iter()
        .zip(&want)
        .position(|(a, b)| a.to_bits() != b.to_bits());
    assert!(
        bad.is_none(),
        "{what}: GPU and CPU twin differ at {bad:?}: {:?} vs {:?}",
        bad.map(|i| got[i]),
        bad.map(|i| want[i])
    );
    let got_labels: Vec<u32> = gpu.read(wgpu_cnn::gpu::BufSlice::from(&labels)).unwrap();
    let want_labels: Vec<u32> = crops
        .iter()
        .map(|c| split.labels[c.record as usize])
        .collect();
    assert_eq!(got_labels, want_labels, "{what}: labels");
    got
}

#[test]
fn augmentation_shader_matches_cpu() {
    let Some(gpu) = gpu() else { return };
    let split = data::parse_records(&records(40, 3), "synthetic").unwrap();
    let ds = GpuDataset::upload(gpu, &split, "test", None).unwrap();
    let mut r = rng(4);
    let seed = seed_augment();
    let mut crops: Vec<Crop> = (0..37)
        .map(|i| seed.draw(&mut r, (i * 7 + 3) % 40, CIFAR))
        .collect();
    crops[0] = Crop::identity(5, CIFAR);
    crops[1] = Crop {
        record: 6,
        flip: true,
        ..Crop::identity(6, CIFAR)
    };
    let norm = data::Normalization::cifar10();
    let got = check_augment(gpu, &split, &ds, &crops, &norm, "seed augmentation");

    // The identity crop reproduces the normalised pixels exactly; the flip mirrors columns.
    let img = split.image(5);
    let img6 = split.image(6);
    for (y, x, c) in [(0usize, 0usize, 0usize), (31, 31, 2), (7, 19, 1)] {
        let v = img[(y * 32 + x) * 3 + c] as f32;
        let want = (v / 255.0 - data::MEAN[c]) / data::STD[c];
        assert_eq!(got[(y * 32 + x) * 3 + c], want);
        let flipped = img6[(y * 32 + 31 - x) * 3 + c] as f32;
        let wantf = (flipped / 255.0 - data::MEAN[c]) / data::STD[c];
        assert_eq!(got[3072 + (y * 32 + x) * 3 + c], wantf);
    }
}

/// Every augmentation on odd shapes (one and three channels, rectangular), bit for bit
/// against the CPU twin; pad and translate checked pixel by pixel against their definition.
#[test]
fn every_augmentation_matches_its_cpu_twin() {
    let Some(gpu) = gpu() else { return };
    for (shape, classes) in [
        (data::ImageShape { h: 7, w: 9, c: 3 }, 5),
        (data::ImageShape { h: 11, w: 6, c: 1 }, 3),
    ] {
        let split = random_split(23, shape, classes, 7 + shape.c as u64);
        let ds = GpuDataset::upload(gpu, &split, "odd", None).unwrap();
        let norm = data::Normalization {
            mean: (0..shape.c).map(|c| 0.3 + 0.1 * c as f32).collect(),
            std: (0..shape.c).map(|c| 0.2 + 0.05 * c as f32).collect(),
        };
        for list in [
            "flip,rrc",
            "rrc",
            "flip,crop:3",
            "crop:4:reflect,flip",
            "translate:2,flip",
            "flip",
            "none",
        ] {
            let aug = data::Augment::parse(list, (0.3, 1.0), (0.5, 2.0)).unwrap();
            let mut r = rng(13);
            let crops: Vec<Crop> = (0..29).map(|i| aug.draw(&mut r, i % 23, shape)).collect();
            let got = check_augment(
                gpu,
                &split,
                &ds,
                &crops,
                &norm,
                &format!("{list} {shape:?}"),
            );
            // Whole-pixel windows by definition: output (y, x) reads stored pixel
            // (y + top, x' + left) of the flipped image, outside: 0 byte / mirror / mean.
            if list.contains("crop") || list.contains("translate") {
                let (h, w, ch) = (shape.h as i32, shape.w as i32, shape.c as usize);
                for (i, c) in crops.iter().enumerate() {
                    let img = split.image(c.record as usize);
                    for y in 0..h {
                        for x in 0..w {
                            let mut sy = y + c.top;
                            let mut sx = x + c.left;
                            if c.flip {
                                sx = w - 1 - sx;
                            }
                            let outside = sy < 0 || sx < 0 || sy >= h || sx >= w;
                            for k in 0..ch {
                                let o = i * shape.bytes() + ((y * w + x) as usize) * ch + k;
                                let want = match c.fill {
                                    data::Fill::Mean if outside => 0.0,
                                    data::Fill::Reflect => {
                                        let m = |v: i32, n: i32| {
                                            if v < 0 {
                                                -v
                                            } else if v >= n {
                                                2 * (n - 1) - v
                                            } else {
                                                v
                                            }
                                        };
                                        sy = m(sy, h);
                                        sx = m(sx, w);
                                        let v = img[((sy * w + sx) as usize) * ch + k] as f32;
                                        (v / 255.0 - norm.mean[k]) / norm.std[k]
                                    }
                                    _ => {
                                        let v = if outside {
                                            0.0
                                        } else {
                                            img[((sy * w + sx) as usize) * ch + k] as f32
                                        };
                                        (v / 255.0 - norm.mean[k]) / norm.std[k]
                                    }
                                };
                                assert_eq!(got[o], want, "{list}: image {i} ({y},{x},{k}) {c:?}");
                            }
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn augmentation_reads_every_image_binding() {
    let Some(gpu) = gpu() else { return };
    // The same images in one binding and spread over all four by a hand-made GpuDataset
    // (3 images per binding, the last holding the rest).
    let shape = data::ImageShape { h: 5, w: 3, c: 3 };
    let split = random_split(11, shape, 4, 5);
    let pack = |b: &[u8]| -> Vec<u32> {
        let mut v: Vec<u32> = b
            .chunks(4)
            .map(|c| c.iter().rev().fold(0u32, |acc, &x| (acc << 8) | x as u32))
            .collect();
        v.push(0);
        v
    };
    let per = shape.bytes();
    let four = GpuDataset {
        chunks: (0..4)
            .map(|k| {
                let (a, b) = ((3 * k).min(11), (3 * k + 3).min(11));
                let b = if k == 3 { 11 } else { b };
                gpu.storage_from("chunk", &pack(&split.images[a * per..b * per]))
            })
            .collect(),
        chunk_images: 3,
        labels: gpu.storage_from("l", &split.labels),
        len: 11,
        shape,
        window: None,
    };
    let one = GpuDataset::upload(gpu, &split, "one", None).unwrap();
    // upload splits by the binding limit: 3 images of 45 bytes per 140-byte binding.
    let split_up = GpuDataset::upload_within(gpu, &split, "split", 140, None).unwrap();
    assert_eq!((split_up.chunk_images, split_up.bindings_used()), (3, 4));
    // Too large for four bindings: an error naming the sizes, never a truncation.
    let err = GpuDataset::upload_within(gpu, &split, "big", 100, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("do not fit in the 4 storage bindings"),
        "{err}"
    );
    let aug = data::Augment::parse("flip,crop:2:reflect", (0.8, 1.0), (0.9, 1.1)).unwrap();
    let mut r = rng(6);
    let crops: Vec<Crop> = (0..11).map(|i| aug.draw(&mut r, i, shape)).collect();
    let norm = data::Normalization::none(3);
    let a = check_augment(gpu, &split, &four, &crops, &norm, "four bindings");
    let b = check_augment(gpu, &split, &one, &crops, &norm, "one binding");
    assert_eq!(a, b);
    let c = check_augment(gpu, &split, &split_up, &crops, &norm, "split by upload");
    assert_eq!(a, c);
}

/// Runs the augmentation shader over `words` of `ds`: the batch and its labels.
fn augment_words(
    gpu: &wgpu_cnn::gpu::Gpu,
    ds: &GpuDataset,
    words: &[[u32; 8]],
    norm: &data::Normalization,
) -> (Vec<f32>, Vec<u32>) {
    let crop_buf = gpu.storage_from("crops", words);
    let input = gpu.storage("input", words.len() * ds.shape.bytes());
    let labels = gpu.storage("labels", words.len());
    let d = augment::batch(
        gpu,
        words.len() as u32,
        ds,
        norm,
        (&crop_buf).into(),
        (&input).into(),
        (&labels).into(),
    );
    gpu.run(&[&d]).unwrap();
    (
        gpu.read_f32(&input).unwrap(),
        gpu.read(wgpu_cnn::gpu::BufSlice::from(&labels)).unwrap(),
    )
}

/// A data set too large for the storage bindings is streamed: each stage copies the images
/// its crops name into a window (images of 45 bytes, so they straddle words), and the shader
/// reads the same pixels and labels as from a resident copy, stage after stage, with submits
/// still in flight; streaming can be forced; a window spreads over as many bindings as it
/// needs.
#[test]
fn streamed_data_sets_stage_the_named_images() {
    let Some(gpu) = gpu() else { return };
    let shape = data::ImageShape { h: 5, w: 3, c: 3 };
    let split = random_split(23, shape, 7, 8);
    let norm = data::Normalization::none(3);
    let resident = GpuDataset::upload(gpu, &split, "resident", None).unwrap();
    assert_eq!(resident.window, None);
    let want = data::Streaming {
        min: 4,
        want: 8,
        force: false,
    };
    // Fits: resident even though streaming is allowed; forced: streamed.
    let fits = GpuDataset::upload(gpu, &split, "fits", Some(want)).unwrap();
    assert_eq!(fits.window, None);
    let forced = GpuDataset::upload(
        gpu,
        &split,
        "forced",
        Some(data::Streaming {
            force: true,
            ..want
        }),
    )
    .unwrap();
    assert_eq!(forced.window, Some(8));
    // 23 images of 45 bytes do not fit in four bindings of 100 bytes (2 images each): the
    // window of 8 spreads over all four; with 200 bytes (4 each) over two.
    let spread = GpuDataset::upload_within(gpu, &split, "spread", 100, Some(want)).unwrap();
    assert_eq!(
        (spread.window, spread.chunk_images, spread.bindings_used()),
        (Some(8), 2, 4)
    );
    let capped = GpuDataset::upload_within(
        gpu,
        &split,
        "capped",
        200,
        Some(data::Streaming { want: 6, ..want }),
    )
    .unwrap();
    assert_eq!(
        (capped.window, capped.chunk_images, capped.bindings_used()),
        (Some(6), 4, 2)
    );
    // Four bindings of 80 bytes hold one image each: a batch of 5 cannot stream.
    let err = GpuDataset::upload_within(
        gpu,
        &split,
        "tiny",
        80,
        Some(data::Streaming { min: 5, ..want }),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("one batch of 5 images of 5x3x3") && err.contains("--batch-size"),
        "{err}"
    );
    assert!(
        GpuDataset::upload_within(gpu, &split, "none", 200, None).is_err(),
        "without streaming a data set that does not fit is an error"
    );

    let aug = data::Augment::parse("flip,crop:2:reflect", (0.8, 1.0), (0.9, 1.1)).unwrap();
    let mut r = rng(9);
    for (ds, n) in [(&forced, 8), (&spread, 8), (&spread, 5), (&capped, 6)] {
        // Stages of records in a shuffled order, a record twice in one stage, staged one
        // after the other into the same window.
        let mut order: Vec<u32> = (0..23).collect();
        order.shuffle(&mut r);
        order.extend([order[0], order[0], 22, 0, 5]);
        for stage in order.chunks(n) {
            let words: Vec<[u32; 8]> = stage
                .iter()
                .map(|&i| aug.draw(&mut r, i, shape).words())
                .collect();
            let (want_x, want_l) = augment_words(gpu, &resident, &words, &norm);
            let mut staged = words.clone();
            ds.stage(gpu, &split, &mut staged).unwrap();
            let slots: Vec<u32> = staged.iter().map(|w| w[0]).collect();
            assert_eq!(slots, (0..stage.len() as u32).collect::<Vec<_>>());
            assert_eq!(&staged[0][1..], &words[0][1..], "only the record changes");
            let (got_x, got_l) = augment_words(gpu, ds, &staged, &norm);
            assert_eq!(got_l, want_l, "labels of stage {stage:?}");
            assert!(
                got_x
                    .iter()
                    .zip(&want_x)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "pixels of stage {stage:?}"
            );
        }
    }

    // Stages queued behind submits that have not run yet: each submit sees its own stage
    // (in both of the window's bindings).
    let stages: Vec<Vec<[u32; 8]>> = [
        [3u32, 1, 4, 1, 5, 9],
        [2, 6, 5, 3, 5, 8],
        [22, 21, 0, 7, 11, 13],
    ]
    .iter()
    .map(|s| {
        s.iter()
            .map(|&i| aug.draw(&mut r, i, shape).words())
            .collect()
    })
    .collect();
    const B: usize = 6;
    let per = B * shape.bytes();
    let input = gpu.storage("input", per);
    let labels = gpu.storage("labels", B);
    let crops = gpu.storage("crops", B * 8);
    let out = gpu.storage("out", stages.len() * per);
    let out_labels = gpu.storage("out.labels", stages.len() * B);
    let d = augment::batch(
        gpu,
        B as u32,
        &capped,
        &norm,
        (&crops).into(),
        (&input).into(),
        (&labels).into(),
    );
    for (k, words) in stages.iter().enumerate() {
        let mut staged = words.clone();
        capped.stage(gpu, &split, &mut staged).unwrap();
        gpu.queue
            .write_buffer(&crops, 0, bytemuck::cast_slice(&staged));
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        wgpu_cnn::gpu::dispatch::record_passes(&mut enc, "stage", [&d]);
        enc.copy_buffer_to_buffer(&input, 0, &out, (k * per * 4) as u64, (per * 4) as u64);
        enc.copy_buffer_to_buffer(&labels, 0, &out_labels, (k * B * 4) as u64, (B * 4) as u64);
        gpu.queue.submit([enc.finish()]);
    }
    let got = gpu.read_f32(&out).unwrap();
    let got_labels: Vec<u32> = gpu
        .read(wgpu_cnn::gpu::BufSlice::from(&out_labels))
        .unwrap();
    for (k, words) in stages.iter().enumerate() {
        let (want_x, want_l) = augment_words(gpu, &resident, words, &norm);
        assert_eq!(
            &got_labels[k * B..(k + 1) * B],
            &want_l[..],
            "stage {k}: labels"
        );
        assert!(
            got[k * per..(k + 1) * per]
                .iter()
                .zip(&want_x)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "stage {k}: pixels"
        );
    }
    // A stage larger than the window is an error, not a truncation.
    let mut seven = stages[0].clone();
    seven.push(stages[1][0]);
    assert!(capped.stage(gpu, &split, &mut seven).is_err());
}

/// A tar.gz holding `cifar-10-batches-bin/` with tiny but valid files.
fn tiny_tarball() -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let files = data::cifar::TRAIN_FILES
        .iter()
        .chain([&data::cifar::TEST_FILE])
        .chain([&"batches.meta.txt"]);
    for (i, f) in files.enumerate() {
        let body = if f.ends_with(".txt") {
            data::CLASS_NAMES.join("\n").into_bytes()
        } else {
            records(2, 10 + i as u64)
        };
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        tar.append_data(&mut h, format!("cifar-10-batches-bin/{f}"), body.as_slice())
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// Serves `body` to every request on a local port; returns the URL.
fn serve(body: Vec<u8>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/gzip\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://127.0.0.1:{port}/cifar-10-binary.tar.gz")
}

fn md5_hex(b: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

#[test]
fn download_verifies_checksum_and_extracts() {
    let tarball = tiny_tarball();
    let md5 = md5_hex(&tarball);
    let url = serve(tarball);
    let dir = std::env::temp_dir().join(format!("wgpu-cnn-dl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    // A wrong checksum: an error naming it, and nothing left behind.
    let err = data::download::download(&url, "00000000000000000000000000000000", &dir, false)
        .unwrap_err();
    assert!(format!("{err:#}").contains("checksum mismatch"), "{err:#}");
    assert!(!dir.join(data::download::FOLDER).exists());
    assert!(
        std::fs::read_dir(&dir).unwrap().next().is_none(),
        "partial download left behind"
    );

    let out = data::download::download(&url, &md5, &dir, false).unwrap();
    assert!(data::is_present(&out));
    let ds = data::load(&out, &Default::default()).unwrap();
    assert_eq!((ds.train.len(), ds.test.len()), (10, 2));

    // The CLI's download command does the same.
    let dir2 = dir.join("cli");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_wgpu-cnn"))
        .args([
            "download",
            "--dir",
            dir2.to_str().unwrap(),
            "--url",
            &url,
            "--md5",
            &md5,
        ])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(data::is_present(&dir2.join(data::download::FOLDER)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_data_says_how_to_get_it() {
    let opts = data::DataOptions {
        kind: Some(data::Kind::Cifar10),
        ..Default::default()
    };
    let dir = std::env::temp_dir().join(format!("wgpu-cnn-nodata-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let err = data::load(&dir, &opts).err().unwrap().to_string();
    assert!(err.contains("wgpu-cnn download"), "{err}");
    let err = data::load(
        std::path::Path::new("/nonexistent/cifar"),
        &Default::default(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("no such folder") && err.contains("wgpu-cnn download"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `flip:alternate` (airbench's alternating flip): each image's flip is drawn once per run
/// (about half the images), mirrored on every odd epoch, independent of the epoch's RNG and of
/// the geometry drawn with it; other seeds draw other halves.
#[test]
fn alternating_flip_mirrors_each_image_on_odd_epochs() {
    let aug =
        data::Augment::parse("flip:alternate,crop:2:reflect", (0.8, 1.0), (0.9, 1.1)).unwrap();
    assert_eq!(aug.canonical(), "flip:alternate,crop:2:reflect");
    let n = 4000u32;
    let flips = |epoch: u32, seed: u64| -> Vec<bool> {
        let mut r = rng(1000 + epoch as u64);
        (0..n)
            .map(|i| aug.draw_in(&mut r, i, CIFAR, epoch, seed).flip)
            .collect()
    };
    let e0 = flips(0, 42);
    let half = e0.iter().filter(|&&f| f).count() as u32;
    assert!(
        (n / 2 - 150..n / 2 + 150).contains(&half),
        "{half}/{n} flipped"
    );
    for epoch in 1..5 {
        let e = flips(epoch, 42);
        for (i, (&a, &b)) in e0.iter().zip(&e).enumerate() {
            assert_eq!(b, a ^ (epoch % 2 == 1), "image {i}, epoch {epoch}");
        }
    }
    let other = flips(0, 7);
    let same = e0.iter().zip(&other).filter(|(a, b)| a == b).count() as u32;
    assert!(
        (n / 2 - 200..n / 2 + 200).contains(&same),
        "seeds 42 and 7 agree on {same}"
    );
}
