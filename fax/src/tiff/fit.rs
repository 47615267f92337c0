//! Page normalisation for sending: any bilevel page to a T.4 A4 page, 1728 pixels across
//! at 204 dpi (T.4 §2.2) and 98 (standard) or 196 (fine) lines per inch (T.4 §2.1).

use super::super::t4::{Bitmap, A4_WIDTH, DEFAULT_MAX_ROWS};
use super::Page;

/// Fax horizontal resolution, dots per inch (8 pels/mm).
const FAX_X_DPI: f64 = 204.0;
/// Width of the fax scan line in inches (215 mm).
const FAX_WIDTH_IN: f64 = A4_WIDTH as f64 / FAX_X_DPI;
/// A page up to 1% wider than the fax line is cropped rather than shrunk.
const CROP_TOLERANCE: f64 = 1.01;
/// Effective source resolutions at or above this many lines per inch become fine.
const FINE_THRESHOLD: f64 = 140.0;

/// T.4 vertical resolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerticalResolution {
    /// 3.85 lines/mm, 98 lines per inch.
    Standard,
    /// 7.7 lines/mm, 196 lines per inch.
    Fine,
}

impl VerticalResolution {
    /// Lines per inch.
    pub fn lines_per_inch(self) -> f32 {
        match self {
            VerticalResolution::Standard => 98.0,
            VerticalResolution::Fine => 196.0,
        }
    }
}

/// Resolutions to assume: unknown (0) horizontal resolution means the image is as wide
/// as a fax line (so a 1728-pixel image is taken as 204 dpi); unknown vertical resolution
/// means square pixels.
fn effective_resolution(page: &Page) -> (f64, f64) {
    let known = |r: f32| (r.is_finite() && r > 0.0).then_some(f64::from(r));
    let x = known(page.x_res_dpi)
        .or(known(page.y_res_dpi))
        .unwrap_or(page.width().max(1) as f64 / FAX_WIDTH_IN);
    let y = known(page.y_res_dpi).unwrap_or(x);
    (x, y)
}

/// Magnification keeping the physical size, except that a page wider than the fax line
/// (beyond a 1% tolerance) is shrunk to fit it.
fn magnification(page: &Page, x_dpi: f64) -> f64 {
    let width_in = page.width() as f64 / x_dpi;
    if width_in > FAX_WIDTH_IN * CROP_TOLERANCE {
        FAX_WIDTH_IN / width_in
    } else {
        1.0
    }
}

/// [`fit_to_fax_as`] choosing fine resolution when the source has at least 140 lines
/// per inch at the output size, standard otherwise.
pub fn fit_to_fax(page: &Page) -> Page {
    let (x_dpi, y_dpi) = effective_resolution(page);
    let lpi = y_dpi / magnification(page, x_dpi);
    let vres = if lpi >= FINE_THRESHOLD {
        VerticalResolution::Fine
    } else {
        VerticalResolution::Standard
    };
    fit_to_fax_as(page, vres)
}

/// Converts a page to 1728 pixels at 204 dpi and `vres` lines per inch.
///
/// The physical size is kept: the image is resampled from its own resolution (unknown
/// resolutions: see above) to 204 × `vres` dpi, by nearest neighbour, i.e. by duplicating
/// or dropping columns and rows. A page physically wider than the fax line is shrunk
/// (keeping its aspect ratio) to 1728 pixels; one up to 1% wider is centred and cropped;
/// a narrower one is centred and padded with white. A 1728-pixel, 204-dpi page keeps its
/// columns; its rows are only touched if `vres` differs from its own. The result has at
/// most [`DEFAULT_MAX_ROWS`] rows and keeps [`Page::bad_rows`].
pub fn fit_to_fax_as(page: &Page, vres: VerticalResolution) -> Page {
    let target_lpi = f64::from(vres.lines_per_inch());
    let (x_dpi, y_dpi) = effective_resolution(page);
    let m = magnification(page, x_dpi);
    let (width, height) = (page.width(), page.height());

    // Columns: the resampled image is `scaled` pixels wide, centred on the fax line.
    let scaled = ((width as f64 * m * FAX_X_DPI / x_dpi).round() as usize).max(1);
    let offset = (A4_WIDTH as isize - scaled as isize) / 2;
    let columns: Vec<Option<usize>> = (0..A4_WIDTH)
        .map(|x| {
            let sx = usize::try_from(x as isize - offset)
                .ok()
                .filter(|&sx| sx < scaled)?;
            let source = ((sx as f64 + 0.5) * width as f64 / scaled as f64) as usize;
            Some(source.min(width.saturating_sub(1)))
        })
        .collect();
    let identity = scaled == width && offset == 0;

    // Rows: duplicated or dropped to the target line density.
    let rows_out = if height == 0 {
        0
    } else {
        ((height as f64 * m * target_lpi / y_dpi).round() as usize).clamp(1, DEFAULT_MAX_ROWS)
    };
    let mut bitmap = Bitmap::new(A4_WIDTH);
    let mut row = vec![0u8; Bitmap::row_bytes(A4_WIDTH)];
    for r in 0..rows_out {
        let sy = (((r as f64 + 0.5) * height as f64 / rows_out as f64) as usize).min(height - 1);
        let source = page.bitmap.row(sy).unwrap_or_default();
        if identity {
            bitmap.push_row(source);
            continue;
        }
        row.iter_mut().for_each(|b| *b = 0);
        for (x, column) in columns.iter().enumerate() {
            let black = column.is_some_and(|sx| {
                source
                    .get(sx / 8)
                    .is_some_and(|b| b & (0x80 >> (sx % 8)) != 0)
            });
            if black {
                if let Some(byte) = row.get_mut(x / 8) {
                    *byte |= 0x80 >> (x % 8);
                }
            }
        }
        bitmap.push_row(&row);
    }
    Page {
        bitmap,
        x_res_dpi: FAX_X_DPI as f32,
        y_res_dpi: vres.lines_per_inch(),
        bad_rows: page.bad_rows,
    }
}
