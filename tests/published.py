"""The bicubic rows of the EDSR and RCAN papers' tables: what medsr's bicubic must reproduce."""

PUBLISHED = {  # (set, scale): (PSNR dB, SSIM)
    ("Set5", 2): (33.66, 0.9299),
    ("Set5", 3): (30.39, 0.8682),
    ("Set5", 4): (28.42, 0.8104),
    ("Set14", 2): (30.24, 0.8688),
    ("Set14", 3): (27.55, 0.7742),
    ("Set14", 4): (26.00, 0.7027),
    ("B100", 2): (29.56, 0.8431),
    ("B100", 3): (27.21, 0.7385),
    ("B100", 4): (25.96, 0.6675),
}
N_IMAGES = {"Set5": 5, "Set14": 14, "B100": 100}
