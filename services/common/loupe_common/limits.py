"""Custom Vision's documented limits that more than one part of Loupe needs: each written once.

The gateway takes them as the defaults of its configuration (an operator may change them
there), the web UI gets the gateway's configured values in its page, and the command-line
client, which only knows the REST API, splits its uploads by them.
"""
from __future__ import annotations

MB = 1024 * 1024

#: Images in one upload call (images/files, images/urls, images/predictions, images), and ids
#: in one call that takes a list of images or predictions (images/tags, images/metadata,
#: predictions, tagsandregions/suggestions).
MAX_BATCH_IMAGES = 64
#: Tags in one upload call, and tag ids in one call that takes a list of them.
MAX_BATCH_TAGS = 20
#: Largest training image.
MAX_TRAINING_IMAGE_BYTES = 6 * MB
#: Largest image to classify.
MAX_PREDICTION_IMAGE_BYTES = 4 * MB
#: Untagged images (the oldest) that one Smart Labeler query or count classifies and ranks.
MAX_SUGGESTED_IMAGES = 1000
