-- Emails, partitioned by month on received_at, with their attachments and tags.
-- Partitions (monthly + DEFAULT) are created and retired by partition maintenance (schema/partitions.toml),
-- never by migrations. attachments and email_tags are co-partitioned with emails (same key, same months) so a
-- month of mail, with everything that references it, is retired by dropping partitions, not by DELETE.

CREATE TABLE pat.emails (
    id               uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES pat.tenants (id),
    received_at      timestamptz NOT NULL DEFAULT now(),
    message_id       text NOT NULL,
    -- Client-supplied key that makes ingestion retry-safe (e.g. hash of the SMTP transaction).
    idempotency_key  text NOT NULL,
    mailbox_user_id  uuid,
    direction        text NOT NULL DEFAULT 'inbound',
    sender           text NOT NULL,
    recipients       text[] NOT NULL,
    cc               text[] NOT NULL DEFAULT '{}',
    subject          text NOT NULL DEFAULT '',
    text_body        text,
    html_body        text,
    headers          jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    size_bytes       bigint NOT NULL,
    status           text NOT NULL DEFAULT 'received',
    spam_score       numeric(5, 2),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz,
    -- 'simple' configuration: tenants write in many languages, so no language-specific stemming.
    search           tsvector GENERATED ALWAYS AS (
                         setweight(to_tsvector('simple', coalesce(subject, '')), 'A')
                         || setweight(to_tsvector('simple', coalesce(sender, '')), 'B')
                         || setweight(to_tsvector('simple', left(coalesce(text_body, ''), 100000)), 'C')
                     ) STORED,
    -- Keys on a partitioned table must include the partition key (received_at).
    PRIMARY KEY (tenant_id, id, received_at),
    CONSTRAINT emails_idempotency_key UNIQUE (tenant_id, idempotency_key, received_at),
    FOREIGN KEY (tenant_id, mailbox_user_id) REFERENCES pat.users (tenant_id, id),
    CONSTRAINT emails_direction_valid CHECK (direction IN ('inbound', 'outbound')),
    CONSTRAINT emails_status_valid CHECK (
        status IN ('received', 'processing', 'delivered', 'read', 'archived', 'quarantined', 'bounced', 'failed')
    ),
    CONSTRAINT emails_size_range CHECK (size_bytes BETWEEN 0 AND 157286400),
    CONSTRAINT emails_spam_score_range CHECK (spam_score BETWEEN -100 AND 100),
    CONSTRAINT emails_recipients_present CHECK (cardinality(recipients) BETWEEN 1 AND 1000),
    CONSTRAINT emails_headers_object CHECK (jsonb_typeof(headers) = 'object'),
    CONSTRAINT emails_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    CONSTRAINT emails_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 200)
) PARTITION BY RANGE (received_at);

-- The unique key above only covers one received_at; this ledger makes the key unique per tenant across all time
-- (an ingestion retry with a new received_at is rejected too). Rows are small and retired with the same retention.
CREATE TABLE pat.email_idempotency_keys (
    tenant_id        uuid NOT NULL REFERENCES pat.tenants (id),
    idempotency_key  text NOT NULL,
    email_id         uuid NOT NULL,
    received_at      timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX email_idempotency_keys_created_at_idx ON pat.email_idempotency_keys (created_at);

CREATE FUNCTION pat.claim_email_idempotency_key() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    INSERT INTO pat.email_idempotency_keys (tenant_id, idempotency_key, email_id, received_at)
    VALUES (NEW.tenant_id, NEW.idempotency_key, NEW.id, NEW.received_at)
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING;
    -- A key already claimed for THIS email is fine (batch ingest claims keys first, then inserts the winners).
    IF NOT FOUND AND NOT EXISTS (
        SELECT FROM pat.email_idempotency_keys
        WHERE tenant_id = NEW.tenant_id AND idempotency_key = NEW.idempotency_key AND email_id = NEW.id
    ) THEN
        RAISE EXCEPTION 'duplicate idempotency key % for tenant %', NEW.idempotency_key, NEW.tenant_id
            USING ERRCODE = 'unique_violation', CONSTRAINT = 'email_idempotency_keys_pkey';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER emails_claim_idempotency_key BEFORE INSERT ON pat.emails
    FOR EACH ROW EXECUTE FUNCTION pat.claim_email_idempotency_key();

-- Indexes lead with tenant_id: every application query is tenant-scoped by RLS.
CREATE INDEX emails_tenant_received_idx ON pat.emails (tenant_id, received_at DESC) WHERE deleted_at IS NULL;
CREATE INDEX emails_tenant_status_idx ON pat.emails (tenant_id, status, received_at DESC) WHERE deleted_at IS NULL;
CREATE INDEX emails_tenant_mailbox_idx ON pat.emails (tenant_id, mailbox_user_id, received_at DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX emails_tenant_message_id_idx ON pat.emails (tenant_id, message_id);
CREATE INDEX emails_search_idx ON pat.emails USING gin (search);
CREATE INDEX emails_metadata_idx ON pat.emails USING gin (metadata jsonb_path_ops);

CREATE TABLE pat.attachments (
    id                 uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL,
    email_id           uuid NOT NULL,
    email_received_at  timestamptz NOT NULL,
    filename           text NOT NULL,
    content_type       text NOT NULL,
    size_bytes         bigint NOT NULL,
    sha256             bytea NOT NULL,
    -- Key in the KMS-encrypted attachments bucket: tenants/<tenant>/<sha256> (content-addressed, dedupes).
    s3_key             text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deleted_at         timestamptz,
    PRIMARY KEY (tenant_id, id, email_received_at),
    FOREIGN KEY (tenant_id, email_id, email_received_at)
        REFERENCES pat.emails (tenant_id, id, received_at) ON DELETE CASCADE,
    CONSTRAINT attachments_sha256_length CHECK (octet_length(sha256) = 32),
    CONSTRAINT attachments_size_range CHECK (size_bytes BETWEEN 0 AND 157286400),
    CONSTRAINT attachments_content_type_format CHECK (content_type ~ '^[a-z0-9.+-]+/[A-Za-z0-9.+_-]+'),
    CONSTRAINT attachments_filename_length CHECK (length(filename) BETWEEN 1 AND 255),
    CONSTRAINT attachments_s3_key_format CHECK (s3_key ~ '^tenants/[0-9a-f-]{36}/' AND length(s3_key) <= 1024)
) PARTITION BY RANGE (email_received_at);
CREATE INDEX attachments_email_idx ON pat.attachments (tenant_id, email_id, email_received_at)
    WHERE deleted_at IS NULL;
CREATE INDEX attachments_sha256_idx ON pat.attachments (tenant_id, sha256);

CREATE TABLE pat.tags (
    id          uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES pat.tenants (id),
    name        text NOT NULL,
    color       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz,
    PRIMARY KEY (tenant_id, id),
    CONSTRAINT tags_name_length CHECK (length(name) BETWEEN 1 AND 100),
    CONSTRAINT tags_color_hex CHECK (color ~ '^#[0-9a-fA-F]{6}$')
);
CREATE UNIQUE INDEX tags_tenant_name_live_key ON pat.tags (tenant_id, lower(name)) WHERE deleted_at IS NULL;

CREATE TABLE pat.email_tags (
    tenant_id          uuid NOT NULL,
    email_id           uuid NOT NULL,
    email_received_at  timestamptz NOT NULL,
    tag_id             uuid NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, email_id, tag_id, email_received_at),
    FOREIGN KEY (tenant_id, email_id, email_received_at)
        REFERENCES pat.emails (tenant_id, id, received_at) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, tag_id) REFERENCES pat.tags (tenant_id, id) ON DELETE CASCADE
) PARTITION BY RANGE (email_received_at);
CREATE INDEX email_tags_tag_idx ON pat.email_tags (tenant_id, tag_id, email_received_at DESC);

CREATE TRIGGER emails_touch_updated_at BEFORE UPDATE ON pat.emails
    FOR EACH ROW EXECUTE FUNCTION pat.touch_updated_at();
CREATE TRIGGER attachments_touch_updated_at BEFORE UPDATE ON pat.attachments
    FOR EACH ROW EXECUTE FUNCTION pat.touch_updated_at();
CREATE TRIGGER tags_touch_updated_at BEFORE UPDATE ON pat.tags
    FOR EACH ROW EXECUTE FUNCTION pat.touch_updated_at();

DO $$
DECLARE
    tenant_table text;
BEGIN
    FOREACH tenant_table IN ARRAY ARRAY['emails', 'email_idempotency_keys', 'attachments', 'tags', 'email_tags'] LOOP
        EXECUTE format('ALTER TABLE pat.%I ENABLE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format('ALTER TABLE pat.%I FORCE ROW LEVEL SECURITY', tenant_table);
        EXECUTE format(
            'CREATE POLICY tenant_isolation ON pat.%I TO pat_app, pat_readonly '
            'USING (tenant_id = pat.current_tenant_id()) WITH CHECK (tenant_id = pat.current_tenant_id())',
            tenant_table
        );
        EXECUTE format('GRANT SELECT ON pat.%I TO pat_readonly', tenant_table);
    END LOOP;
END
$$;

-- Partition maintenance (owner) trims the ledger after the emails' retention; nothing else of the owner's reads it.
CREATE POLICY operator_purge ON pat.email_idempotency_keys FOR ALL TO pat_owner USING (true) WITH CHECK (true);

GRANT SELECT, INSERT, UPDATE, DELETE ON pat.emails, pat.attachments, pat.tags, pat.email_tags TO pat_app;
-- The ledger is append-only for the application.
GRANT SELECT, INSERT ON pat.email_idempotency_keys TO pat_app;
