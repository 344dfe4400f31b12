-- Reverses migration.sql (indexes, constraints and the trigger go with the table).
DROP TABLE "public"."candidates";
