"""Real datasets (NYU, ICVL, MSRA, HANDS2017), cropping, augmentation and published results."""
