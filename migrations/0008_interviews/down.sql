-- Reverses migration.sql: the panel table references interviews, so it goes first.
DROP TABLE "public"."interview_panelists";
DROP TABLE "public"."interviews";
