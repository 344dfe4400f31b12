-- Reverses migration.sql, in reverse order.
DROP TRIGGER "applications_record_stage_change" ON "public"."applications";
DROP FUNCTION "public"."record_application_stage_change"();
DROP TABLE "public"."application_stage_history";
