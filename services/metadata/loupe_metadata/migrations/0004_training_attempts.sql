-- How many times trainers have started an iteration's job: a job that kills its trainer is
-- redelivered, and counting in the database (which outlives a SIGKILLed trainer) lets the
-- next trainer fail it after a few crashes instead of starting it forever.
ALTER TABLE iterations ADD COLUMN training_attempts integer NOT NULL DEFAULT 0;
