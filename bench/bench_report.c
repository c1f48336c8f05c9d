// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * upager-bench's results: the targets (ratios measured side by side in
 * one run), the tables, and the same as one JSON object.
 */
#include <inttypes.h>
#include <stdio.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <upager/upager.h>

#include "bench.h"
#include "cli.h"

/* ---- results ------------------------------------------------------------- */

struct target {
	const char *id, *label;
	double ratio, goal;
	bool at_most; /* met when ratio <= goal, else when >= */
};

static double a_p50(struct bench *b, int m)
{
	return median(b->a[m].p50, b->o.rounds);
}

static double c_med(struct bench *b, bool rnd, int cold, size_t i)
{
	struct c_result *r = rnd ? &b->crand[cold][i] : &b->cseq[cold][i];

	return median(r->rate, b->o.rounds);
}

/* A row's peak RSS, bytes: the median over the rounds. */
static double c_rss(struct bench *b, bool rnd, int cold, size_t i)
{
	struct c_result *r = rnd ? &b->crand[cold][i] : &b->cseq[cold][i];

	return median(r->rss, b->o.rounds);
}

/* The best region case of a sequential cache state (word reader). */
static size_t c_best(struct bench *b, int cold)
{
	size_t best = 0;

	for (size_t i = 0; i < C_SEQ_N; i++)
		if (c_seq[i].kind == C_REGION && !c_seq[i].bytesum &&
		    !c_seq[i].shm &&
		    (!best || c_med(b, false, cold, i) >
				      c_med(b, false, cold, best)))
			best = i;
	return best;
}

/* The faster of the two floors. */
static double c_floor(struct bench *b, int cold)
{
	double a = c_med(b, false, cold, C_SEQ_FLOOR),
	       t = c_med(b, false, cold, C_SEQ_FLOOR + 1);

	return a > t ? a : t;
}

/*
 * The largest peak RSS of a region row over its baseline's, over every
 * C row run; 0 when none ran.  Rows whose baseline RSS is under 1 MiB
 * (nothing to compare) are left out.
 */
static double c_rss_worst(struct bench *b)
{
	double worst = 0;

	for (int rnd = 0; rnd < 2; rnd++)
		for (int cold = 0; cold < 2; cold++)
			for (size_t i = 0; i < (rnd ? C_RAND_N : C_SEQ_N);
			     i++) {
				const struct c_case *c =
					rnd ? &c_rand[i] : &c_seq[i];
				double v = c_rss(b, rnd, cold, i),
				       base = c_rss(b, rnd, cold,
						    (size_t)c->base);

				if (c->kind == C_REGION &&
				    c_med(b, rnd, cold, i) && base >= MIB &&
				    v / base > worst)
					worst = v / base;
			}
	return worst;
}

static size_t targets(struct bench *b, struct target *t)
{
	static const char *const cache[2] = { "warm", "cold" };
	static const double seq_goal[2] = { 0.6, 1.0 };
	static char text[2][2][2][96]; /* [cold][best][id, label] */
	size_t n = 0;

	if (b->o.only & SEC_A) {
		t[n++] = (struct target){
			"handler_1_p50_vs_bare",
			"handler-thread p50, 1 worker / bare loop",
			a_p50(b, A_H1) / a_p50(b, A_BARE), 1.15, true
		};
		t[n++] = (struct target){
			"handler_2_p50_vs_bare",
			"handler-thread p50, 2 workers / bare loop",
			a_p50(b, A_H2) / a_p50(b, A_BARE), 1.15, true
		};
		t[n++] = (struct target){
			"inthread_p50_vs_kernel",
			"in-thread p50 / kernel first touch",
			a_p50(b, A_INTHREAD) / a_p50(b, A_KERNEL), 2.0, true
		};
	}
	for (int cold = 0; cold < (b->o.umap ? 1 : 2) && (b->o.only & SEC_C);
	     cold++) {
		double mmap = c_med(b, false, cold, C_MMAP_PRIVATE);
		size_t best = c_best(b, cold);
		char(*s)[2][96] = text[cold];

		snprintf(s[0][0], sizeof(s[0][0]), "file_seq_%s_vs_mmap",
			 cache[cold]);
		snprintf(s[0][1], sizeof(s[0][1]),
			 "seq %s file read, defaults (4K, ra 1M, 2 workers) "
			 "/ mmap",
			 cache[cold]);
		snprintf(s[1][0], sizeof(s[1][0]), "file_seq_%s_best_vs_mmap",
			 cache[cold]);
		snprintf(s[1][1], sizeof(s[1][1]),
			 "seq %s file read, best (%s) / mmap", cache[cold],
			 c_seq[best].id);
		t[n++] = (struct target){
			s[0][0], s[0][1],
			c_med(b, false, cold, C_SEQ_DEFAULT) / mmap,
			seq_goal[cold], false
		};
		t[n++] = (struct target){ s[1][0], s[1][1],
					  c_med(b, false, cold, best) / mmap,
					  seq_goal[cold], false };
	}
	if (b->o.only & SEC_B)
		t[n++] = (struct target){
			"demand_paging_vs_kernel",
			"seq demand paging, mem, ra on, 2 workers / kernel "
			"first touch",
			median(b->b_rate[B_RA2], b->o.rounds) /
				median(b->b_rate[B_KERNEL], b->o.rounds),
			1.5, false
		};
	if (b->o.only & SEC_C) {
		t[n++] = (struct target){
			"file_random_warm_vs_mmap",
			"random 4K warm reads, region fill 4K / mmap",
			c_med(b, true, 0, C_RAND_4K) /
				c_med(b, true, 0, C_MMAP_PRIVATE),
			0.1, false
		};
		t[n++] = (struct target){
			"file_seq_warm_vs_floor",
			"seq warm file read, defaults / floor (best populate)",
			c_med(b, false, 0, C_SEQ_DEFAULT) / c_floor(b, 0), 0.9,
			false
		};
		t[n++] = (struct target){
			"peak_rss_vs_mmap",
			"peak RSS, worst region row / its mmap row", c_rss_worst(b),
			1.1, true
		};
	}
	if ((b->o.only & SEC_C) && !b->o.umap) {
		t[n++] = (struct target){
			"shm_seq_vs_mmap", "seq read, tmpfs file: region / mmap",
			c_med(b, false, 0, C_SEQ_SHM + 1) /
				c_med(b, false, 0, C_SEQ_SHM),
			0.8, false
		};
		t[n++] = (struct target){
			"shm_random_vs_mmap",
			"random 4K reads, tmpfs file: region / mmap",
			c_med(b, true, 0, C_RAND_SHM + 1) /
				c_med(b, true, 0, C_RAND_SHM),
			0.8, false
		};
	}
	return n;
}

static bool target_met(const struct target *t)
{
	return t->at_most ? t->ratio <= t->goal : t->ratio >= t->goal;
}

/* Per-fault value of counter @v over @faults, or -1 when not known. */
static double per_fault(uint64_t v, uint64_t faults, bool ok)
{
	return ok && faults ? (double)v / (double)faults : -1;
}

struct d_row {
	double f_csw, s_csw, s_reads, s_polls, s_ioctls; /* per fault */
	double f_cpu_us, s_cpu_us, s_wait_us;
};

static void d_row(const struct a_result *r, bool bare, struct d_row *d)
{
	bool ok = r->counters_ok, srv = ok && r->has_server;
	uint64_t n = r->faults;

	d->f_csw = per_fault(r->faulting.csw, n, ok);
	d->f_cpu_us = per_fault(r->faulting.cpu_ns, n, ok) / 1000;
	d->s_csw = per_fault(r->server.csw, n, srv);
	d->s_reads = per_fault(r->server.syscr, n, srv);
	d->s_cpu_us = per_fault(r->server.cpu_ns, n, srv) / 1000;
	d->s_wait_us = per_fault(r->server.wait_ns, n, srv) / 1000;
	d->s_polls = per_fault(r->polls, n, bare);
	d->s_ioctls = per_fault(r->copies, n, bare);
	if (!ok || !n)
		d->f_cpu_us = -1;
	if (!srv || !n)
		d->s_cpu_us = d->s_wait_us = -1;
}

static void ratio_str(char *buf, size_t len, double v, int baseline)
{
	if (baseline < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.2fx", v);
}

/* A per-fault figure, or "-" when the counter is not known. */
static void cell(double v, int prec)
{
	if (v < 0)
		printf(" %7s", "-");
	else
		printf(" %7.*f", prec, v);
}

void print_tables(struct bench *b)
{
	struct target t[24];
	size_t nt = targets(b, t);
	char ratio[32];

	if (b->o.only & SEC_A) {
		printf("A. 4 KiB fault service latency, timed in the faulting "
		       "thread (%zu pages a run,\n   median of %u round(s); "
		       "timer overhead %.0f ns, not subtracted)\n",
		       b->o.a_pages, b->o.rounds, b->timer_ns);
		/* %9s: "µs" is two bytes in one column. */
		printf("  %-42s %9s %9s %10s %7s  %s\n", "mode", "p50 µs",
		       "p99 µs", "faults/s", "ratio", "vs");
		for (int m = 0; m < A_N; m++) {
			int base = a_rows[m].baseline;

			ratio_str(ratio, sizeof(ratio),
				  base < 0 ? 0 : a_p50(b, m) / a_p50(b, base),
				  base);
			printf("  %-42s %8.2f %8.2f %10.0f %7s%s%s\n",
			       a_rows[m].label, a_p50(b, m) / 1000,
			       median(b->a[m].p99, b->o.rounds) / 1000,
			       median(b->a[m].rate, b->o.rounds), ratio,
			       base < 0 ? "" : "  ",
			       base < 0 ? "" : a_rows[base].id);
		}
		printf("\nD. Where a 4 KiB fault's time goes, per fault "
		       "(A's runs; kernel per-thread counters)\n");
		printf("  %-14s %7s %7s %7s %7s %7s %7s %8s %8s %8s\n", "",
		       "faults", "csw", "csw", "read(2)", "poll(2)", "ioctl",
		       "CPU µs", "CPU µs", "wait µs");
		printf("  %-14s %7s %7s %7s %7s %7s %7s %7s %7s %7s\n", "mode",
		       "/run", "fault", "server", "server", "server", "server",
		       "fault", "server", "server");
		for (int m = 0; m < A_N; m++) {
			const struct a_result *r = &b->a[m];
			struct d_row d;

			d_row(r, m == A_BARE, &d);
			printf("  %-14s %7.0f", a_rows[m].id,
			       (double)r->faults / b->o.rounds);
			cell(d.f_csw, 2);
			cell(d.s_csw, 2);
			cell(d.s_reads, 2);
			cell(d.s_polls, 2);
			cell(d.s_ioctls, 2);
			cell(d.f_cpu_us, 2);
			cell(d.s_cpu_us, 2);
			cell(d.s_wait_us, 2);
			putchar('\n');
		}
		printf("  (read(2): the io counter syscr; poll(2) and ioctl: "
		       "counted in the bare loop's code,\n   not observable "
		       "for the engine from its API; wait: runnable, waiting "
		       "for a CPU)\n\n");
	}
	if (b->o.only & SEC_B) {
		printf("B. Sequential demand paging, one reader touching one "
		       "word per 4 KiB page\n   (%" PRIu64
		       " MiB, median of %u round(s))\n",
		       b->o.b_bytes / MIB, b->o.rounds);
		printf("  %-42s %8s %11s %7s  %s\n", "mode", "GiB/s",
		       "faults/run", "ratio", "vs");
		for (int m = 0; m < B_N; m++) {
			int base = b_rows[m].baseline;
			double v = median(b->b_rate[m], b->o.rounds);

			ratio_str(ratio, sizeof(ratio),
				  base < 0 ? 0
					   : v / median(b->b_rate[base],
							b->o.rounds),
				  base);
			printf("  %-42s %8.2f %11.0f %7s%s%s\n",
			       b_rows[m].label, v,
			       (double)b->b_faults[m] / b->o.rounds, ratio,
			       base < 0 ? "" : "  ",
			       base < 0 ? "" : b_rows[base].id);
		}
		putchar('\n');
	}
	if (b->o.only & SEC_C) {
		printf("C. File reads, region vs mmap of the same file (%" PRIu64
		       " MiB in %s; %zu random reads warm,\n   %zu cold; "
		       "median of %u round(s); cold: at most %.1f%%\n   of the "
		       "file left cached).  Every word of each page checked "
		       "but in the\n   bytesum rows; ratio vs mmap "
		       "MAP_PRIVATE (the tmpfs rows: vs the tmpfs mmap,\n   "
		       "the bytesum rows: vs mmap bytesum); RSS: the row's "
		       "peak, MiB, in a\n   process of its own%s)\n",
		       b->o.size / MIB, b->o.dir, b->o.c_reads,
		       b->o.c_cold_reads, b->o.rounds,
		       b->cold_resident_max * 100,
		       b->o.umap ? "; --umap: those rows only, warm" : "");
		for (int rnd = 0; rnd < 2; rnd++) {
			const struct c_case *cs = rnd ? c_rand : c_seq;
			size_t nc = rnd ? C_RAND_N : C_SEQ_N;

			printf("  %-42s %9s %6s %6s %6s %9s %6s %6s %6s\n",
			       rnd ? "random 4 KiB pages, reads/s"
				   : "sequential, GiB/s",
			       "warm", "ratio", "RSS", "ratio", "cold",
			       "ratio", "RSS", "ratio");
			for (size_t i = 0; i < nc; i++) {
				printf("  %-42s", cs[i].label);
				for (int cold = 0; cold < 2; cold++) {
					double v = c_med(b, rnd, cold, i),
					       m = c_rss(b, rnd, cold, i);
					size_t base = (size_t)cs[i].base;
					char rr[32];

					ratio_str(ratio, sizeof(ratio),
						  v / c_med(b, rnd, cold, base),
						  i == base ? -1 : 0);
					ratio_str(rr, sizeof(rr),
						  m / c_rss(b, rnd, cold, base),
						  i == base ? -1 : 0);
					if (!v) /* left out */
						printf(" %9s %6s %6s %6s", "-",
						       "-", "-", "-");
					else
						printf(rnd ? " %9.0f %6s %6.0f %6s"
							   : " %9.2f %6s %6.0f %6s",
						       v, ratio, m / MIB, rr);
				}
				putchar('\n');
			}
		}
		for (int cold = 0; cold < (b->o.umap ? 1 : 2); cold++)
			printf("  %s: floor / mmap %.2fx; region defaults / "
			       "floor %.2fx\n",
			       cold ? "cold" : "warm",
			       c_floor(b, cold) /
				       c_med(b, false, cold, C_MMAP_PRIVATE),
			       c_med(b, false, cold, C_SEQ_DEFAULT) /
				       c_floor(b, cold));
		putchar('\n');
	}
	if (!nt)
		return;
	printf("Targets (ratios measured side by side in this run)\n");
	for (size_t i = 0; i < nt; i++)
		printf("  %-62s %6.2fx  %s %.2fx  %s\n", t[i].label,
		       t[i].ratio, t[i].at_most ? "<=" : ">=", t[i].goal,
		       target_met(&t[i]) ? "met" : "MISSED");
}

static void json_opt(struct json *j, const char *key, double v)
{
	if (v >= 0)
		json_f64(j, key, v);
}

static void json_row_open(struct json *j, const struct row_def *row)
{
	json_obj_open(j, NULL);
	json_str(j, "id", row->id);
	json_str(j, "label", row->label);
}

/* End a row of @rows: its baseline's id and @ratio to it, if it has one. */
static void json_row_close(struct json *j, const struct row_def *rows,
			   const struct row_def *row, double ratio)
{
	if (row->baseline >= 0) {
		json_str(j, "baseline", rows[row->baseline].id);
		json_f64(j, "ratio", ratio);
	}
	json_obj_close(j);
}

void print_json(struct bench *b, const struct utsname *u)
{
	struct target t[24];
	size_t nt = targets(b, t);
	struct json j;

	json_begin(&j, stdout);
	json_str(&j, "bench", "upager-bench");
	json_u64(&j, "version", 1);
	json_bool(&j, "quick", b->o.quick);
	json_u64(&j, "rounds", b->o.rounds);
	json_obj_open(&j, "machine");
	json_i64(&j, "nproc", sysconf(_SC_NPROCESSORS_ONLN));
	json_str(&j, "kernel", u->release);
	json_obj_close(&j);
	if (b->o.only & SEC_A) {
		json_obj_open(&j, "A");
		json_u64(&j, "pages", b->o.a_pages);
		json_f64(&j, "timer_overhead_ns", b->timer_ns);
		json_arr_open(&j, "rows");
		for (int m = 0; m < A_N; m++) {
			int base = a_rows[m].baseline;

			json_row_open(&j, &a_rows[m]);
			json_f64(&j, "p50_us", a_p50(b, m) / 1000);
			json_f64(&j, "p99_us",
				 median(b->a[m].p99, b->o.rounds) / 1000);
			json_f64(&j, "faults_per_s",
				 median(b->a[m].rate, b->o.rounds));
			json_row_close(&j, a_rows, &a_rows[m],
				       base < 0 ? 0 : a_p50(b, m) / a_p50(b, base));
		}
		json_arr_close(&j);
		json_obj_close(&j);
		json_obj_open(&j, "D");
		json_arr_open(&j, "rows");
		for (int m = 0; m < A_N; m++) {
			const struct a_result *r = &b->a[m];
			struct d_row d;

			d_row(r, m == A_BARE, &d);
			json_obj_open(&j, NULL);
			json_str(&j, "id", a_rows[m].id);
			json_f64(&j, "faults_per_run",
				 (double)r->faults / b->o.rounds);
			json_opt(&j, "faulting_csw_per_fault", d.f_csw);
			json_opt(&j, "server_csw_per_fault", d.s_csw);
			json_opt(&j, "server_reads_per_fault", d.s_reads);
			json_opt(&j, "server_polls_per_fault", d.s_polls);
			json_opt(&j, "server_ioctls_per_fault", d.s_ioctls);
			json_opt(&j, "faulting_cpu_us_per_fault", d.f_cpu_us);
			json_opt(&j, "server_cpu_us_per_fault", d.s_cpu_us);
			json_opt(&j, "server_wait_us_per_fault", d.s_wait_us);
			json_obj_close(&j);
		}
		json_arr_close(&j);
		json_obj_close(&j);
	}
	if (b->o.only & SEC_B) {
		json_obj_open(&j, "B");
		json_u64(&j, "bytes", b->o.b_bytes);
		json_arr_open(&j, "rows");
		for (int m = 0; m < B_N; m++) {
			int base = b_rows[m].baseline;
			double v = median(b->b_rate[m], b->o.rounds);

			json_row_open(&j, &b_rows[m]);
			json_f64(&j, "gib_per_s", v);
			json_f64(&j, "faults_per_run",
				 (double)b->b_faults[m] / b->o.rounds);
			json_row_close(&j, b_rows, &b_rows[m],
				       base < 0 ? 0
						: v / median(b->b_rate[base],
							     b->o.rounds));
		}
		json_arr_close(&j);
		json_obj_close(&j);
	}
	if (b->o.only & SEC_C) {
		json_obj_open(&j, "C");
		json_u64(&j, "bytes", b->o.size);
		json_u64(&j, "random_reads_warm", b->o.c_reads);
		json_u64(&j, "random_reads_cold", b->o.c_cold_reads);
		json_f64(&j, "cold_resident_max_pct",
			 b->cold_resident_max * 100);
		json_bool(&j, "cold_dropped", b->cold_dropped);
		json_bool(&j, "umap", b->o.umap);
		for (int cold = 0; cold < (b->o.umap ? 1 : 2); cold++) {
			json_obj_open(&j, cold ? "floor_cold" : "floor_warm");
			json_f64(&j, "gib_per_s", c_floor(b, cold));
			json_f64(&j, "vs_mmap",
				 c_floor(b, cold) /
					 c_med(b, false, cold, C_MMAP_PRIVATE));
			json_f64(&j, "region_defaults_vs_floor",
				 c_med(b, false, cold, C_SEQ_DEFAULT) /
					 c_floor(b, cold));
			json_obj_close(&j);
		}
		for (int rnd = 0; rnd < 2; rnd++) {
			const struct c_case *cs = rnd ? c_rand : c_seq;
			size_t nc = rnd ? C_RAND_N : C_SEQ_N;

			json_arr_open(&j, rnd ? "random" : "seq");
			for (int cold = 0; cold < 2; cold++) {
				for (size_t i = 0; i < nc; i++) {
					double v = c_med(b, rnd, cold, i);
					size_t base = (size_t)cs[i].base;

					json_obj_open(&j, NULL);
					json_str(&j, "cache",
						 cold ? "cold" : "warm");
					json_str(&j, "id", cs[i].id);
					json_str(&j, "label", cs[i].label);
					if (!v) {
						json_bool(&j, "skipped", true);
						json_obj_close(&j);
						continue;
					}
					json_f64(&j,
						 rnd ? "reads_per_s"
							: "gib_per_s",
						 v);
					json_f64(&j, "peak_rss_mib",
						 c_rss(b, rnd, cold, i) / MIB);
					if (i != base) {
						json_str(&j, "baseline",
							 cs[base].id);
						json_f64(&j, "ratio",
							 v / c_med(b, rnd,
								   cold, base));
						json_f64(&j, "rss_ratio",
							 c_rss(b, rnd, cold, i) /
								 c_rss(b, rnd,
								       cold,
								       base));
					}
					json_obj_close(&j);
				}
			}
			json_arr_close(&j);
		}
		json_obj_close(&j);
	}
	json_arr_open(&j, "targets");
	for (size_t i = 0; i < nt; i++) {
		json_obj_open(&j, NULL);
		json_str(&j, "id", t[i].id);
		json_str(&j, "label", t[i].label);
		json_f64(&j, "ratio", t[i].ratio);
		json_str(&j, "cmp", t[i].at_most ? "<=" : ">=");
		json_f64(&j, "goal", t[i].goal);
		json_bool(&j, "met", target_met(&t[i]));
		json_obj_close(&j);
	}
	json_arr_close(&j);
	json_end(&j);
}
