-- The training job's hand-off to Kafka, as a transactional outbox: CreateIteration writes the
-- iteration and this row in one transaction, its caller produces the job and marks the row
-- sent, and the gateway's reconciler produces the jobs of rows left unsent (their gateway died
-- between the commit and the send, or Kafka was away). A row goes when its iteration finishes.
CREATE TABLE training_job_outbox (
    iteration_id uuid PRIMARY KEY REFERENCES iterations (id) ON DELETE CASCADE,
    -- The Kafka topic the job goes to (loupe.training.jobs; tests use topics of their own).
    topic        text NOT NULL,
    created      timestamptz NOT NULL DEFAULT now(),
    -- When a reconciler last took the row to produce its job (NULL: never).
    claimed      timestamptz,
    -- How many times a reconciler took it.
    resends      integer NOT NULL DEFAULT 0,
    -- When Kafka acknowledged the job (NULL: not yet).
    sent         timestamptz
);
CREATE INDEX training_job_outbox_unsent_idx ON training_job_outbox (created) WHERE sent IS NULL;
