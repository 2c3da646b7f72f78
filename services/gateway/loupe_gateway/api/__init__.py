"""REST blueprints, one per resource; training's are nested under the training blueprint,
which authenticates every request with the Training-Key header."""
