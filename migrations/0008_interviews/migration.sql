-- Tenant script, Prisma layout: interviews scheduled for an application and
-- the panel of users who run them and leave a scorecard.

-- CreateTable
CREATE TABLE "public"."interviews" (
    "id" BIGSERIAL NOT NULL,
    "application_id" BIGINT NOT NULL,
    "organizer_id" BIGINT,
    "kind" TEXT NOT NULL DEFAULT 'phone_screen',
    "status" TEXT NOT NULL DEFAULT 'scheduled',
    "scheduled_at" TIMESTAMPTZ(3) NOT NULL,
    "duration_minutes" INTEGER NOT NULL DEFAULT 45,
    "location" TEXT,
    "meeting_url" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "interviews_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "public"."interview_panelists" (
    "interview_id" BIGINT NOT NULL,
    "user_id" BIGINT NOT NULL,
    "is_lead" BOOLEAN NOT NULL DEFAULT false,
    "recommendation" TEXT,
    "score" SMALLINT,
    "feedback" TEXT,
    "submitted_at" TIMESTAMPTZ(3),

    CONSTRAINT "interview_panelists_pkey" PRIMARY KEY ("interview_id","user_id")
);

-- CreateIndex
CREATE INDEX "interviews_application_id_idx" ON "public"."interviews"("application_id");

-- CreateIndex
CREATE INDEX "interviews_scheduled_at_idx" ON "public"."interviews"("scheduled_at");

-- CreateIndex
CREATE INDEX "interview_panelists_user_id_idx" ON "public"."interview_panelists"("user_id");

-- AddForeignKey
ALTER TABLE "public"."interviews" ADD CONSTRAINT "interviews_application_id_fkey" FOREIGN KEY ("application_id") REFERENCES "public"."applications"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "public"."interviews" ADD CONSTRAINT "interviews_organizer_id_fkey" FOREIGN KEY ("organizer_id") REFERENCES "public"."users"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "public"."interview_panelists" ADD CONSTRAINT "interview_panelists_interview_id_fkey" FOREIGN KEY ("interview_id") REFERENCES "public"."interviews"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "public"."interview_panelists" ADD CONSTRAINT "interview_panelists_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Hand-written additions
ALTER TABLE "public"."interviews" ADD CONSTRAINT "interviews_kind_check" CHECK ("kind" IN ('phone_screen', 'technical', 'take_home_review', 'onsite', 'culture', 'final'));

ALTER TABLE "public"."interviews" ADD CONSTRAINT "interviews_status_check" CHECK ("status" IN ('scheduled', 'completed', 'cancelled', 'no_show'));

ALTER TABLE "public"."interviews" ADD CONSTRAINT "interviews_duration_check" CHECK ("duration_minutes" BETWEEN 15 AND 480);

ALTER TABLE "public"."interview_panelists" ADD CONSTRAINT "interview_panelists_recommendation_check" CHECK ("recommendation" IS NULL OR "recommendation" IN ('strong_no', 'no', 'yes', 'strong_yes'));

ALTER TABLE "public"."interview_panelists" ADD CONSTRAINT "interview_panelists_score_check" CHECK ("score" IS NULL OR "score" BETWEEN 1 AND 4);

ALTER TABLE "public"."interview_panelists" ADD CONSTRAINT "interview_panelists_submitted_check" CHECK ("submitted_at" IS NULL OR "recommendation" IS NOT NULL);

-- At most one lead interviewer per interview.
CREATE UNIQUE INDEX "interview_panelists_one_lead_key" ON "public"."interview_panelists"("interview_id") WHERE "is_lead";

CREATE TRIGGER "interviews_set_updated_at" BEFORE UPDATE ON "public"."interviews" FOR EACH ROW EXECUTE FUNCTION "public"."set_updated_at"();
