-- Tenant script, Prisma layout (created with `prisma migrate dev --create-only`
-- and completed by hand): an audit trail of pipeline stage changes, filled by
-- a trigger on applications and backfilled with each existing application's
-- current stage. Uses the "public"."application_stage" enum from 0004 and
-- public.current_app_user_id() from 0009.

-- CreateTable
CREATE TABLE "public"."application_stage_history" (
    "id" BIGINT GENERATED ALWAYS AS IDENTITY,
    "application_id" BIGINT NOT NULL,
    "from_stage" "public"."application_stage",
    "to_stage" "public"."application_stage" NOT NULL,
    "changed_by_id" BIGINT,
    "changed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "application_stage_history_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "application_stage_history_change_check" CHECK ("from_stage" IS DISTINCT FROM "to_stage")
);

-- CreateIndex
CREATE INDEX "application_stage_history_application_id_changed_at_idx" ON "public"."application_stage_history"("application_id", "changed_at");

-- AddForeignKey
ALTER TABLE "public"."application_stage_history" ADD CONSTRAINT "application_stage_history_application_id_fkey" FOREIGN KEY ("application_id") REFERENCES "public"."applications"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "public"."application_stage_history" ADD CONSTRAINT "application_stage_history_changed_by_id_fkey" FOREIGN KEY ("changed_by_id") REFERENCES "public"."users"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- Backfill: one entry per existing application, at its current stage.
INSERT INTO "public"."application_stage_history" ("application_id", "from_stage", "to_stage", "changed_by_id", "changed_at")
SELECT a."id", NULL, a."stage", NULL, a."updated_at"
  FROM "public"."applications" AS a
 ORDER BY a."id";

-- Record every later stage change.
CREATE FUNCTION "public"."record_application_stage_change"() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW."stage" IS NOT DISTINCT FROM OLD."stage" THEN
        RETURN NULL;
    END IF;
    INSERT INTO "public"."application_stage_history" ("application_id", "from_stage", "to_stage", "changed_by_id")
    VALUES (NEW."id",
            CASE WHEN TG_OP = 'UPDATE' THEN OLD."stage" END,
            NEW."stage",
            (SELECT u."id" FROM "public"."users" AS u WHERE u."id" = "public"."current_app_user_id"()));
    RETURN NULL;
END;
$$;

CREATE TRIGGER "applications_record_stage_change"
    AFTER INSERT OR UPDATE OF "stage" ON "public"."applications"
    FOR EACH ROW EXECUTE FUNCTION "public"."record_application_stage_change"();
