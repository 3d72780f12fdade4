"""Datasets: bounded readers, image folders, cache, pipeline, augmentation."""
