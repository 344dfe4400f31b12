-- Reverses 0001_plans.up.sql (the seed rows go with the table).
DROP TABLE public.plans;
