"""The paper's recipe: labelled data, datasets, augmentation, training and evaluation."""
