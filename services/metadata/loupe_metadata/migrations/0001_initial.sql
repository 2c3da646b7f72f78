-- Loupe metadata: the initial schema. Ids are UUIDs, times are timestamptz (stored UTC).
-- A parent that owns its children deletes them with it (ON DELETE CASCADE).

CREATE TABLE accounts (
    id                      uuid PRIMARY KEY,
    name                    text NOT NULL,
    prediction_resource_id  text NOT NULL UNIQUE,
    created                 timestamptz NOT NULL DEFAULT now()
);

-- Only the SHA-256 of a key is stored; the plain key is shown once, by CreateAccount.
CREATE TABLE api_keys (
    key_sha256  text PRIMARY KEY,
    account_id  uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('training', 'prediction')),
    created     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_account_idx ON api_keys (account_id);

CREATE TABLE projects (
    id                       uuid PRIMARY KEY,
    account_id               uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name                     text NOT NULL,
    description              text NOT NULL DEFAULT '',
    domain_id                text NOT NULL DEFAULT '',
    classification_type      text NOT NULL CHECK (classification_type IN ('Multiclass', 'Multilabel')),
    target_export_platforms  text[] NOT NULL DEFAULT '{}',
    -- Iterations are named "Iteration N" with N counting every iteration ever created, as
    -- Custom Vision does (deleting one does not reuse its number).
    iteration_seq            integer NOT NULL DEFAULT 0,
    created                  timestamptz NOT NULL DEFAULT now(),
    last_modified            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_account_created_idx ON projects (account_id, created DESC, id DESC);

CREATE TABLE tags (
    id           uuid PRIMARY KEY,
    project_id   uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    type         text NOT NULL CHECK (type IN ('Regular', 'Negative')),
    created      timestamptz NOT NULL DEFAULT now()
);
-- Tag names are unique per project, case-insensitively.
CREATE UNIQUE INDEX tags_project_name_uq ON tags (project_id, lower(name));
-- At most one Negative tag per project.
CREATE UNIQUE INDEX tags_project_negative_uq ON tags (project_id) WHERE type = 'Negative';

CREATE TABLE images (
    id            uuid PRIMARY KEY,
    project_id    uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    sha256        text NOT NULL,
    width         integer NOT NULL DEFAULT 0,
    height        integer NOT NULL DEFAULT 0,
    content_type  text NOT NULL DEFAULT '',
    size_bytes    bigint NOT NULL DEFAULT 0,
    metadata      jsonb NOT NULL DEFAULT '{}',
    created       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT images_project_sha256_uq UNIQUE (project_id, sha256)
);
-- ListImages pages by (created, id) in either direction.
CREATE INDEX images_project_created_idx ON images (project_id, created, id);

CREATE TABLE image_tags (
    image_id  uuid NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    tag_id    uuid NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    created   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (image_id, tag_id)
);
CREATE INDEX image_tags_tag_idx ON image_tags (tag_id);

CREATE TABLE iterations (
    id                         uuid PRIMARY KEY,
    project_id                 uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name                       text NOT NULL,
    status                     text NOT NULL CHECK (status IN ('Training', 'Completed', 'Failed')),
    created                    timestamptz NOT NULL DEFAULT now(),
    last_modified              timestamptz NOT NULL DEFAULT now(),
    trained_at                 timestamptz,
    domain_id                  text NOT NULL DEFAULT '',
    classification_type        text NOT NULL,
    training_type              text NOT NULL CHECK (training_type IN ('Regular', 'Advanced')),
    reserved_budget_in_hours   double precision NOT NULL DEFAULT 0,
    training_time_in_minutes   integer NOT NULL DEFAULT 0,
    publish_name               text,
    prediction_resource_id     text,
    artifact_key               text NOT NULL DEFAULT '',
    error_message              text NOT NULL DEFAULT '',
    progress_stage             text NOT NULL DEFAULT '',
    progress_percent           double precision NOT NULL DEFAULT 0,
    evaluation                 bytea,
    performance                jsonb,
    -- Digest of what the iteration trains on (see core.training_fingerprint): CreateIteration
    -- compares it with the last Completed iteration's to refuse a training that changes nothing.
    training_fingerprint       text NOT NULL
);
CREATE INDEX iterations_project_created_idx ON iterations (project_id, created DESC, id DESC);
-- One training at a time per project, even under concurrent CreateIteration calls.
CREATE UNIQUE INDEX iterations_one_training_uq ON iterations (project_id) WHERE status = 'Training';
-- A publish name names one iteration of a project.
CREATE UNIQUE INDEX iterations_publish_name_uq ON iterations (project_id, publish_name)
    WHERE publish_name IS NOT NULL;

-- The training set frozen at CreateIteration: later uploads, tag edits or deletions do not
-- change what an iteration trains on.
CREATE TABLE iteration_tags (
    iteration_id  uuid NOT NULL REFERENCES iterations (id) ON DELETE CASCADE,
    tag_id        uuid NOT NULL,
    name          text NOT NULL,
    type          text NOT NULL,
    image_count   integer NOT NULL,
    PRIMARY KEY (iteration_id, tag_id)
);

CREATE TABLE iteration_images (
    iteration_id  uuid NOT NULL REFERENCES iterations (id) ON DELETE CASCADE,
    image_id      uuid NOT NULL,
    sha256        text NOT NULL,
    tag_ids       uuid[] NOT NULL,
    PRIMARY KEY (iteration_id, image_id)
);
CREATE INDEX iteration_images_sha256_idx ON iteration_images (sha256);

CREATE TABLE predictions (
    id            uuid PRIMARY KEY,
    project_id    uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    -- Kept when the iteration is deleted, as Custom Vision keeps stored predictions.
    iteration_id  uuid REFERENCES iterations (id) ON DELETE SET NULL,
    image_sha256  text NOT NULL,
    width         integer NOT NULL DEFAULT 0,
    height        integer NOT NULL DEFAULT 0,
    application   text NOT NULL DEFAULT '',
    results       jsonb NOT NULL DEFAULT '[]',
    created       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX predictions_project_created_idx ON predictions (project_id, created DESC, id DESC);
CREATE INDEX predictions_project_sha256_idx ON predictions (project_id, image_sha256);
