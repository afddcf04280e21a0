"""What the demo draws and names: colour and shape words (English and Chinese) and one large
filled shape on a plain background. Shared by the tiny LLaVA's tokenizer corpus (tiny_model.py),
its training (training.py) and the encoder demo's data (encoder_data.py); imports nothing of theirs."""
from __future__ import annotations

# Words the demo tasks ask about, in the tiny models' tokenizer corpus (each becomes one BPE token).
COLOR_WORDS = ["red", "green", "blue", "yellow", "black", "white", "orange", "purple"]
SHAPE_WORDS = ["circle", "square", "triangle", "star", "line", "dot"]
COLOR_WORDS_ZH = ["红色", "绿色", "蓝色", "黄色", "黑色", "白色", "橙色", "紫色"]  # aligned with COLOR_WORDS
SHAPE_WORDS_ZH = ["圆形", "正方形", "三角形", "星形", "线", "点"]  # aligned with SHAPE_WORDS


def color_zh(color: str) -> str:
    """The Chinese word of an English colour word."""
    return COLOR_WORDS_ZH[COLOR_WORDS.index(color)]


def shape_zh(shape: str) -> str:
    """The Chinese word of an English shape word."""
    return SHAPE_WORDS_ZH[SHAPE_WORDS.index(shape)]


SHAPE_COLORS = {"red": (220, 30, 30), "green": (30, 160, 40), "blue": (30, 60, 220),
                "yellow": (240, 220, 30), "black": (15, 15, 15), "white": (250, 250, 250),
                "orange": (250, 140, 20), "purple": (140, 40, 170)}
TRAINED_SHAPES = ["circle", "square", "triangle"]
_BACKGROUNDS = [(128, 128, 128), (255, 255, 255), (200, 200, 200), (70, 70, 70)]


def draw_shape(rnd, color: str, shape: str, size: int = 64):
    """One large filled shape of a named colour on a plain background (Pillow)."""
    from PIL import Image, ImageDraw

    fill = SHAPE_COLORS[color]
    bg = rnd.choice([b for b in _BACKGROUNDS if max(abs(x - y) for x, y in zip(b, fill)) > 60])
    img = Image.new("RGB", (size, size), bg)
    w = rnd.randint(size * 2 // 5, size * 3 // 4)
    x, y = rnd.randint(0, size - w), rnd.randint(0, size - w)
    draw = ImageDraw.Draw(img)
    if shape == "circle":
        draw.ellipse([x, y, x + w, y + w], fill=fill)
    elif shape == "square":
        draw.rectangle([x, y, x + w, y + w], fill=fill)
    else:
        draw.polygon([(x, y + w), (x + w, y + w), (x + w // 2, y)], fill=fill)
    return img
