//! Contact sheets: images laid out in a grid, each with a caption, and
//! text drawn with an 8x8 bitmap font. Plain functions over pixel buffers;
//! `image_grid` and the REPL's `\chart` use them.

use crate::error::Result;
use crate::image_value::{Image, ImageView};
use crate::options::parse::{some, whole};
use crate::pixels;

/// Height of one line of text in pixels.
pub const TEXT_HEIGHT: u32 = 8;
/// Width of one character in pixels.
pub const CHAR_WIDTH: u32 = 8;

/// Draws `text` (ASCII; other characters as `?`) with its top-left corner
/// at (x, y) in colour `rgb`, clipped to the image. RGB or RGBA images.
pub fn draw_text(image: &mut Image, x: i64, y: i64, text: &str, rgb: [u8; 3]) {
    let channels = image.channels as usize;
    if channels < 3 {
        return;
    }
    let (w, h) = (image.width as i64, image.height as i64);
    for (i, ch) in text.chars().enumerate() {
        let code = if ch.is_ascii() && !ch.is_ascii_control() {
            ch as usize
        } else {
            b'?' as usize
        };
        let glyph = font8x8::legacy::BASIC_LEGACY[code];
        let left = x + i as i64 * CHAR_WIDTH as i64;
        if left >= w {
            break;
        }
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) == 0 {
                    continue;
                }
                let (px, py) = (left + col, y + row as i64);
                if px < 0 || py < 0 || px >= w || py >= h {
                    continue;
                }
                let at = (py as usize * image.width as usize + px as usize) * channels;
                image.data[at..at + 3].copy_from_slice(&rgb);
            }
        }
    }
}

crate::option_set! {
    /// How a contact sheet is laid out: the options of `image_grid`.
    pub struct GridLayout for "image_grid" {
        /// Images per row (default: about as many columns as rows).
        columns: Option<u32> = None, some(whole(1, 1000, "must be a whole number from 1 to 1000"));
        /// Side of the square each image is fitted into, in pixels.
        cell: u32 = 96, whole(8, 1024, "must be a whole number from 8 to 1024");
        /// Space around cells, in pixels.
        padding: u32 = 4, whole(0, 64, "must be a whole number from 0 to 64");
    }
}

/// `src` fitted into a `cell` x `cell` square, keeping its aspect ratio, as RGB.
pub fn fit_cell(src: ImageView<'_>, cell: u32) -> Result<Image> {
    let (w, h) = (src.width.max(1) as f64, src.height.max(1) as f64);
    let scale = (cell as f64 / w).min(cell as f64 / h);
    let (fw, fh) = (
        ((w * scale).round() as u32).clamp(1, cell),
        ((h * scale).round() as u32).clamp(1, cell),
    );
    pixels::conform(src, fw, fh, 3)
}

/// (width, height, columns) of a sheet of `n` cells.
pub fn sheet_size(n: usize, layout: &GridLayout, captions: bool) -> (u32, u32, u32) {
    let n = n.max(1) as u32;
    let columns = layout
        .columns
        .unwrap_or_else(|| (n as f64).sqrt().ceil() as u32)
        .clamp(1, n);
    let rows = n.div_ceil(columns);
    let caption = if captions { TEXT_HEIGHT + 2 } else { 0 };
    let width = columns * (layout.cell + layout.padding) + layout.padding;
    let height = rows * (layout.cell + caption + layout.padding) + layout.padding;
    (width, height, columns)
}

/// Lays `cells` (already fitted, RGB) out row by row, each centred in its
/// square with its caption under it, on a dark background.
pub fn contact_sheet(cells: &[(Image, Option<String>)], layout: &GridLayout) -> Image {
    let captions = cells.iter().any(|(_, c)| c.is_some());
    let (width, height, columns) = sheet_size(cells.len(), layout, captions);
    let mut sheet = Image {
        width,
        height,
        channels: 3,
        data: [32u8, 32, 32].repeat(width as usize * height as usize),
    };
    let caption_height = if captions { TEXT_HEIGHT + 2 } else { 0 };
    for (i, (cell, caption)) in cells.iter().enumerate() {
        let (col, row) = (i as u32 % columns, i as u32 / columns);
        let x0 = layout.padding + col * (layout.cell + layout.padding);
        let y0 = layout.padding + row * (layout.cell + caption_height + layout.padding);
        let (dx, dy) = (
            (layout.cell - cell.width.min(layout.cell)) / 2,
            (layout.cell - cell.height.min(layout.cell)) / 2,
        );
        for y in 0..cell.height.min(layout.cell) {
            let src = (y * cell.width) as usize * 3;
            let dst = (((y0 + dy + y) * width + x0 + dx) as usize) * 3;
            let len = cell.width.min(layout.cell) as usize * 3;
            sheet.data[dst..dst + len].copy_from_slice(&cell.data[src..src + len]);
        }
        if let Some(text) = caption {
            let fits = (layout.cell / CHAR_WIDTH) as usize;
            let shown: String = text.chars().take(fits).collect();
            draw_text(
                &mut sheet,
                x0 as i64,
                (y0 + layout.cell + 1) as i64,
                &shown,
                [230, 230, 230],
            );
        }
    }
    sheet
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, rgb: [u8; 3]) -> Image {
        Image {
            width: w,
            height: h,
            channels: 3,
            data: rgb.repeat((w * h) as usize),
        }
    }

    #[test]
    fn lays_out_cells_with_captions() {
        let layout = GridLayout {
            columns: Some(2),
            cell: 16,
            padding: 2,
        };
        let cells: Vec<(Image, Option<String>)> = (0..3)
            .map(|i| {
                (
                    fit_cell(solid(32, 16, [200, 0, 0]).view(), 16).unwrap(),
                    Some(format!("c{i}")),
                )
            })
            .collect();
        assert_eq!((cells[0].0.width, cells[0].0.height), (16, 8));
        let sheet = contact_sheet(&cells, &layout);
        // 2 columns x (16 + 2) + 2; 2 rows x (16 + 10 + 2) + 2.
        assert_eq!((sheet.width, sheet.height), (38, 58));
        let at = |x: u32, y: u32| &sheet.data[((y * sheet.width + x) * 3) as usize..][..3];
        // The 16x8 image is centred vertically in its 16x16 square.
        assert_eq!(at(2, 2), [32, 32, 32]);
        assert_eq!(at(2, 6), [200, 0, 0]);
        // The fourth square is empty; some caption pixels are lit.
        assert_eq!(at(30, 40), [32, 32, 32]);
        let lit = (0..38).filter(|&x| at(x, 2 + 16 + 1 + 3) == [230, 230, 230]).count();
        assert!(lit > 0);
    }

    #[test]
    fn text_is_clipped_and_non_ascii_is_a_question_mark() {
        let mut image = solid(10, 10, [0, 0, 0]);
        draw_text(&mut image, 5, 5, "Ω≈", [255, 255, 255]);
        draw_text(&mut image, -100, -100, "far away", [255, 255, 255]);
        assert!(image.data.contains(&255));
    }
}
