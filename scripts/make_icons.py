"""Draw the 128x128 PNG icons of the extension and its modules.

Usage: python scripts/make_icons.py   (writes Resources/Icons/DeepDosimetry.png and each module's
Resources/Icons/<Module>.png; needs Pillow)
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
SIZE = 128
BACKGROUND = (22, 52, 92, 255)
ACCENT = (255, 196, 0, 255)
LIGHT = (235, 240, 248, 255)


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((4, 4, SIZE - 5, SIZE - 5), radius=22, fill=BACKGROUND)
    return image, draw


def _trefoil(draw: ImageDraw.ImageDraw, centre: tuple[int, int], radius: int) -> None:
    x, y = centre
    for start in (-120, 0, 120):
        draw.pieslice((x - radius, y - radius, x + radius, y + radius), start - 30 - 90, start + 30 - 90, fill=ACCENT)
    draw.ellipse((x - radius // 4 - 3, y - radius // 4 - 3, x + radius // 4 + 3, y + radius // 4 + 3), fill=BACKGROUND)
    draw.ellipse((x - radius // 5, y - radius // 5, x + radius // 5, y + radius // 5), fill=ACCENT)


def planar_to_3d() -> Image.Image:
    image, draw = _canvas()
    draw.rectangle((16, 30, 42, 98), outline=LIGHT, width=4)
    draw.rectangle((86, 30, 112, 98), outline=LIGHT, width=4)
    draw.polygon([(52, 50), (76, 40), (76, 80), (52, 90)], outline=ACCENT, width=4)
    draw.line([(52, 50), (64, 58), (76, 40)], fill=ACCENT, width=3)
    return image


def dlpvc() -> Image.Image:
    image, draw = _canvas()
    blurred = Image.new("RGBA", (SIZE, SIZE), (0, 0, 0, 0))
    ImageDraw.Draw(blurred).ellipse((14, 42, 58, 86), fill=ACCENT)
    image.alpha_composite(blurred.filter(ImageFilter.GaussianBlur(7)))
    draw.polygon([(60, 56), (74, 64), (60, 72)], fill=LIGHT)
    draw.ellipse((78, 46, 114, 82), fill=ACCENT)
    return image


def dose_rate_cnn() -> Image.Image:
    image, draw = _canvas()
    _trefoil(draw, (64, 58), 34)
    for x in (30, 52, 74, 96):
        draw.rectangle((x - 6, 100, x + 6, 112), fill=LIGHT)
    return image


def deep_dosimetry() -> Image.Image:
    image, draw = _canvas()
    _trefoil(draw, (64, 64), 44)
    return image


def core() -> Image.Image:
    image, draw = _canvas()
    draw.ellipse((34, 34, 94, 94), outline=LIGHT, width=6)
    draw.ellipse((54, 54, 74, 74), fill=ACCENT)
    return image


ICONS = {
    ROOT / "Resources/Icons/DeepDosimetry.png": deep_dosimetry,
    ROOT / "DeepDosimetryCore/Resources/Icons/DeepDosimetryCore.png": core,
    ROOT / "PlanarTo3D/Resources/Icons/PlanarTo3D.png": planar_to_3d,
    ROOT / "DLPVC/Resources/Icons/DLPVC.png": dlpvc,
    ROOT / "DoseRateCNN/Resources/Icons/DoseRateCNN.png": dose_rate_cnn,
}


def main() -> None:
    for path, draw in ICONS.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        draw().save(path)
        print(path)


if __name__ == "__main__":
    main()
