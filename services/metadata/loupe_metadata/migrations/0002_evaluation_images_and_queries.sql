-- The image id of each row of an iteration's held-out evaluation, so per-image performance
-- (`…/performance/images`) can name the images. NULL for iterations trained before this column:
-- their row order is rebuilt from iteration_images (see core.evaluation_image_ids).
ALTER TABLE iterations ADD COLUMN evaluation_image_ids uuid[];

-- QueryPredictions filters by iteration and orders by time.
CREATE INDEX predictions_project_iteration_idx ON predictions (project_id, iteration_id, created DESC);
