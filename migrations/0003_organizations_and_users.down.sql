-- Reverses 0003_organizations_and_users.up.sql (triggers and indexes go with their tables).
DROP TABLE public.users;
DROP TABLE public.organizations;
DROP FUNCTION public.set_updated_at();
