// The fallback barcode decoder (ZXing, pure JavaScript) for browsers without BarcodeDetector.
// Built as its own module and loaded only when needed, so the page itself stays small.

import {
  BarcodeFormat,
  BinaryBitmap,
  DecodeHintType,
  HybridBinarizer,
  MultiFormatReader,
  NotFoundException,
  RGBLuminanceSource,
} from '@zxing/library';

const reader = new MultiFormatReader();
reader.setHints(
  new Map([
    [DecodeHintType.POSSIBLE_FORMATS, [BarcodeFormat.DATA_MATRIX, BarcodeFormat.QR_CODE]],
    [DecodeHintType.TRY_HARDER, true],
  ]),
);

/** The text of the DataMatrix or QR code in `image` (an ImageData), or null. */
export function decodeImageData(image) {
  const { data, width, height } = image;
  const luminance = new Uint8ClampedArray(width * height);
  for (let i = 0, p = 0; i < luminance.length; i++, p += 4) {
    luminance[i] = (data[p] * 299 + data[p + 1] * 587 + data[p + 2] * 114) / 1000;
  }
  try {
    const bitmap = new BinaryBitmap(new HybridBinarizer(new RGBLuminanceSource(luminance, width, height)));
    return reader.decode(bitmap).getText();
  } catch (error) {
    if (error instanceof NotFoundException || (error && error.name === 'NotFoundException')) return null;
    return null;
  } finally {
    reader.reset();
  }
}
