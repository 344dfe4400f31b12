/*
 * bench/onequery.c — the one-round-trip-per-tenant client baseline of
 * bench/run.sh: reads the plan file (per tenant "BEGIN; ... COMMIT;", the
 * transaction ending with a line "COMMIT;") and sends each tenant's whole
 * transaction as one query (one simple-protocol message, one round trip)
 * over one connection, stopping at the first error.
 *
 *   onequery CONNINFO PLANFILE
 *
 * Prints the number of transactions sent.  Built by bench/run.sh with
 * gcc -I$(pg_config --includedir) ... -lpq.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

int
main(int argc, char **argv)
{
	FILE	   *f;
	char	   *buf;
	long		len;
	char	   *p;
	long		sent = 0;
	PGconn	   *conn;
	static const char end[] = "\nCOMMIT;";

	if (argc != 3)
	{
		fprintf(stderr, "usage: %s CONNINFO PLANFILE\n", argv[0]);
		return 2;
	}
	f = fopen(argv[2], "rb");
	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
		fseek(f, 0, SEEK_SET) != 0)
	{
		perror(argv[2]);
		return 1;
	}
	buf = malloc(len + 1);
	if (buf == NULL || fread(buf, 1, len, f) != (size_t) len)
	{
		perror(argv[2]);
		return 1;
	}
	buf[len] = '\0';
	fclose(f);

	conn = PQconnectdb(argv[1]);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		fprintf(stderr, "%s", PQerrorMessage(conn));
		return 1;
	}

	p = buf;
	while (*p)
	{
		char	   *e = strstr(p, end);
		char		save;
		PGresult   *res;

		while (*p == '\n')
			p++;
		if (*p == '\0')
			break;
		if (e == NULL)
		{
			fprintf(stderr, "transaction %ld has no COMMIT line\n", sent + 1);
			return 1;
		}
		e += strlen(end);
		save = *e;
		*e = '\0';
		res = PQexec(conn, p);
		if (PQresultStatus(res) != PGRES_COMMAND_OK &&
			PQresultStatus(res) != PGRES_TUPLES_OK)
		{
			fprintf(stderr, "transaction %ld failed: %s", sent + 1, PQerrorMessage(conn));
			return 1;
		}
		PQclear(res);
		sent++;
		*e = save;
		p = e;
	}
	PQfinish(conn);
	printf("%ld\n", sent);
	return 0;
}
