-- Retention deletes the oldest stored predictions of every project: by creation time alone.
CREATE INDEX predictions_created_idx ON predictions (created);
