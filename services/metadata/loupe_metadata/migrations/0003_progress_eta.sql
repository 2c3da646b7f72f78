-- Estimated seconds left of a Training iteration, reported by the trainer with its progress.
ALTER TABLE iterations ADD COLUMN progress_eta_seconds double precision NOT NULL DEFAULT 0;
