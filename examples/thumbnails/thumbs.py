"""Thumbnails with Pillow: CPU-bound work, one image a job, each under a memory limit
(jobrunner.toml's [tasks.thumbnail]: a job that would use more is ended as `oom`, not
the machine)."""

from __future__ import annotations

import os

from PIL import Image, ImageDraw, ImageFilter


def make_images(folder: str, count: int, size: int = 1600) -> list[str]:
    """`count` photo-sized images to shrink (gradients, circles, a blur: real pixels)."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for n in range(count):
        image = Image.linear_gradient("L").resize((size, size)).convert("RGB")
        draw = ImageDraw.Draw(image)
        for k in range(12):
            r = 40 + 9 * ((n * 7 + k * 13) % 50)
            x, y = (n * 131 + k * 97) % size, (n * 71 + k * 211) % size
            draw.ellipse((x - r, y - r, x + r, y + r), fill=((n * 40) % 256, k * 20, 200))
        path = os.path.join(folder, f"photo{n:03d}.jpg")
        image.filter(ImageFilter.GaussianBlur(3)).save(path, quality=90)
        paths.append(path)
    return paths


def thumbnail(source: str, size: int = 256) -> dict:
    """`source` shrunk to fit `size` x `size`, sharpened, saved beside it as .thumb.jpg."""
    with Image.open(source) as image:
        image.thumbnail((size, size), Image.Resampling.LANCZOS)
        small = image.filter(ImageFilter.SHARPEN)
        target = os.path.splitext(source)[0] + ".thumb.jpg"
        small.save(target, quality=85)
        return {"thumbnail": target, "width": small.width, "height": small.height}
