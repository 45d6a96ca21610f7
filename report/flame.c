/* flame.c: `mapprof flame DUMP [NEW] -o FILE.svg`: a self-contained SVG flame graph (no network,
 * no external script): width by the chosen sample, hover details, click to zoom, search, and the
 * chains `mapprof growth` reports highlighted. With two dumps, a diff flame graph: widths by the
 * larger side, red where NEW grew, blue where it shrank. It reads only the profile. */
#include <string.h>
#include <unistd.h>

#include "trie.h"
#include "usage.h"

#define WIDTH 1200
#define ROW   16

/* Text for the SVG (an XML document in UTF-8): markup characters escaped, control characters
 * (which XML does not allow) as spaces, and each ill-formed UTF-8 sequence of a name or path,
 * which would make the whole file unreadable, as U+FFFD. */
static void xml(struct strbuf *sb, const char *s)
{
	while (*s) {
		switch (*s) {
		case '&':
			sb_adds(sb, "&amp;");
			break;
		case '<':
			sb_adds(sb, "&lt;");
			break;
		case '>':
			sb_adds(sb, "&gt;");
			break;
		case '"':
			sb_adds(sb, "&quot;");
			break;
		default:
			if ((unsigned char)*s < 0x20) {
				sb_addch(sb, ' ');
				break;
			}
			bool valid;
			size_t n = utf8_next(s, &valid);
			if (valid)
				sb_add(sb, s, n);
			else
				sb_adds(sb, "\xef\xbf\xbd");
			s += n;
			continue;
		}
		s++;
	}
}

struct flame {
	struct strbuf *sb;
	struct output *out; /* sb is written out as it grows */
	const struct trie *t;
	enum sample_index s;
	double *width; /* per node, in the sample's units (see frame_widths) */
	double total;  /* the root's width: the picture's */
	double pct_of; /* NEW's total, for the percentages */
	bool diff;
	int maxdepth;
};

/* The width of every node, children before parents (a child's index is above its parent's).
 * A node's width is its own part (the allocations it made itself, or that no drawn child holds)
 * plus its children's widths, so children always fit inside their parent. In a flame graph of
 * one profile that is the node's value. In a diff, each side has its own tree of values and a
 * child may be the larger side where its parent is not, so each node's own part is the larger of
 * the two sides' own parts: every frame is at least as wide as both its values, and the root,
 * which the picture's width is, can be wider than either total. */
static void frame_widths(struct flame *fl)
{
	const struct trie *t = fl->t;
	enum sample_index s = fl->s;
	double *kids_v = xcalloc(t->len, sizeof(double));
	double *kids_b = xcalloc(t->len, sizeof(double));
	for (size_t i = t->len; i-- > 0;) {
		const struct tnode *n = &t->n[i];
		double own_v = (double)n->v[s] - kids_v[i], own_b = (double)n->base[s] - kids_b[i];
		double own = own_v > own_b ? own_v : own_b;
		fl->width[i] += own > 0 ? own : 0; /* children's widths are in already */
		if (i) {
			fl->width[n->parent] += fl->width[i];
			kids_v[n->parent] += (double)n->v[s];
			kids_b[n->parent] += (double)n->base[s];
		}
	}
	free(kids_v);
	free(kids_b);
}

static void color(const struct flame *fl, const struct tnode *n, char *out, size_t len)
{
	if (fl->diff) {
		double b = (double)n->base[fl->s], v = (double)n->v[fl->s];
		double m = b > v ? b : v;
		double d = m > 0 ? (v - b) / m : 0; /* -1 .. 1 */
		int k = (int)(200 * (1 - (d < 0 ? -d : d)));
		if (d > 0.001)
			snprintf(out, len, "rgb(255,%d,%d)", k, k);
		else if (d < -0.001)
			snprintf(out, len, "rgb(%d,%d,255)", k, k);
		else
			snprintf(out, len, "rgb(220,220,220)");
		return;
	}
	if (n->growth) {
		snprintf(out, len, "rgb(190,60,220)");
		return;
	}
	uint64_t h = 1469598103934665603ull;
	for (const char *p = n->key; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ull;
	snprintf(out, len, "rgb(%d,%d,%d)", 205 + (int)(h % 50), 80 + (int)((h >> 8) % 120),
	         (int)((h >> 16) % 55));
}

/* The depth of the deepest frame that will be drawn (the SVG's height depends on it). */
static void measure(struct flame *fl, size_t at, int depth)
{
	const struct tnode *n = &fl->t->n[at];
	if (fl->width[at] / fl->total * WIDTH < 0.3)
		return;
	if (depth > fl->maxdepth)
		fl->maxdepth = depth;
	for (size_t i = 0; i < n->nkids; i++)
		measure(fl, n->kids[i], depth + 1);
}

/* One frame: its place as data attributes (for the script's zoom) and, so that the picture
 * shows without the script too (an <img> in a README runs none), drawn in place with its label. */
static void emit_node(struct flame *fl, size_t at, double x, int depth)
{
	const struct tnode *n = &fl->t->n[at];
	double w = fl->width[at] / fl->total;
	if (w * WIDTH < 0.3)
		return;
	struct strbuf *sb = fl->sb;
	char fill[40];
	color(fl, n, fill, sizeof(fill));
	sb_addf(sb, "<g class=\"f\" data-x=\"%.9f\" data-w=\"%.9f\" data-d=\"%d\"%s><title>", x, w,
	        depth, n->growth ? " data-g=\"1\"" : "");
	xml(sb, n->key);
	sb_adds(sb, n->frame && n->frame->inlined ? " (inlined) (" : " (");
	if (fl->diff) {
		format_value(sb, fl->s, n->base[fl->s]);
		sb_adds(sb, " -> ");
	}
	format_value(sb, fl->s, n->v[fl->s]);
	double px = x * WIDTH, pw = w * WIDTH;
	int y = (fl->maxdepth - depth) * ROW + 40;
	sb_addf(sb,
	        ", %.2f%%%s)</title><rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" "
	        "fill=\"%s\"/><text x=\"%.2f\" y=\"%d\">",
	        fl->pct_of > 0 ? 100.0 * (double)n->v[fl->s] / fl->pct_of : 0.0,
	        n->growth ? ", growth" : "", px, y, pw > 0.6 ? pw - 0.5 : 0.1, ROW - 1, fill,
	        px + 3, y + ROW - 4);
	/* the label: as much of the name as fits at 7 px a character */
	int fit = (int)((pw - 6) / 7);
	size_t len = strlen(n->key);
	if (fit >= 3) {
		struct strbuf label = STRBUF_INIT;
		if (len <= (size_t)fit) {
			sb_adds(&label, n->key);
		} else {
			size_t cut = (size_t)fit - 2;
			while (cut && ((unsigned char)n->key[cut] & 0xc0) == 0x80)
				cut--; /* never split a UTF-8 character */
			sb_add(&label, n->key, cut);
			sb_adds(&label, "..");
		}
		xml(sb, sb_str(&label));
		sb_release(&label);
	}
	sb_adds(sb, "</text></g>\n");
	double cx = x;
	for (size_t i = 0; i < n->nkids; i++) {
		out_flush(fl->out, fl->sb, OUT_CHUNK);
		emit_node(fl, n->kids[i], cx, depth + 1);
		cx += fl->width[n->kids[i]] / fl->total;
	}
}

static const char script[] =
    "<script><![CDATA[\n"
    "var W=1200,ROW=16,H=0,zoomed=null,svgns='http://www.w3.org/2000/svg';\n"
    "var gs=[].slice.call(document.querySelectorAll('g.f'));\n"
    "var details=document.getElementById('details'),found=document.getElementById('found');\n"
    "var maxd=0;gs.forEach(function(g){maxd=Math.max(maxd,+g.getAttribute('data-d'));});\n"
    "function name(g){return g.querySelector('title').textContent;}\n"
    "function short(g){var t=name(g);return t.substring(0,t.lastIndexOf(' ('));}\n"
    "function layout(x0,w0,d0){gs.forEach(function(g){\n"
    " var x=+g.getAttribute('data-x'),w=+g.getAttribute('data-w'),d=+g.getAttribute('data-d');\n"
    " var r=g.querySelector('rect'),t=g.querySelector('text'),nx,nw;\n"
    " if(d<d0){if(x<=x0+1e-12&&x+w>=x0+w0-1e-12){nx=0;nw=W;g.style.opacity=0.6;}else{g.style."
    "display='none';return;}}\n"
    " else{if(x+w<=x0+1e-12||x>=x0+w0-1e-12){g.style.display='none';return;}nx=(x-x0)/w0*W;nw=w/"
    "w0*W;g.style.opacity=1;}\n"
    " g.style.display='';var y=(maxd-d)*ROW+40;\n"
    " r.setAttribute('x',nx);r.setAttribute('y',y);r.setAttribute('width',Math.max(nw-0.5,0.1));"
    "r.setAttribute('height',ROW-1);\n"
    " t.setAttribute('x',nx+3);t.setAttribute('y',y+ROW-4);var s=short(g),c=Math.floor((nw-6)/7);"
    "\n"
    " t.textContent=c<3?'':(s.length<=c?s:s.substring(0,c-2)+'..');});}\n"
    "function zoom(g){zoomed=g;layout(+g.getAttribute('data-x'),+g.getAttribute('data-w'),+g."
    "getAttribute('data-d'));}\n"
    "function reset(){zoomed=null;layout(0,1,0);}\n"
    "gs.forEach(function(g){g.addEventListener('click',function(){zoom(g);});\n"
    " g.addEventListener('mouseover',function(){details.textContent=name(g);});\n"
    " g.addEventListener('mouseout',function(){details.textContent=' ';});});\n"
    "document.getElementById('reset').addEventListener('click',reset);\n"
    "function search(re){var n=0,tot=0;gs.forEach(function(g){var r=g.querySelector('rect');\n"
    " if(!r.getAttribute('data-fill'))r.setAttribute('data-fill',r.getAttribute('fill'));\n"
    " if(re&&re.test(short(g))){r.setAttribute('fill','rgb(230,0,230)');n++;}else r."
    "setAttribute('fill',r.getAttribute('data-fill'));});\n"
    " found.textContent=re?('matched '+n+' frames'):' ';}\n"
    "document.getElementById('search').addEventListener('click',function(){\n"
    " var p=prompt('Search (regular expression)','');if(p===null)return;\n"
    " try{search(p?new RegExp(p):null);}catch(e){found.textContent='bad regex';}});\n"
    "document.addEventListener('keydown',function(e){if(e.key==='Escape')reset();\n"
    " if((e.ctrlKey||e.metaKey)&&e.key==='f'){e.preventDefault();document.getElementById("
    "'search').dispatchEvent(new Event('click'));}});\n"
    "function params(){var o={},q=typeof location!=='undefined'&&location?"
    "(location.search||location.hash||'').substring(1):'';\n"
    " q.split('&').forEach(function(kv){var i=kv.indexOf('=');if(i>0)o[decodeURIComponent("
    "kv.substring(0,i))]=decodeURIComponent(kv.substring(i+1).replace(/\\+/g,' '));});return o;}\n"
    "reset();\n"
    "var P=params();\n"
    "if(P.zoom){var z=null;gs.forEach(function(g){if(short(g)===P.zoom&&(!z||+g.getAttribute("
    "'data-w')>+z.getAttribute('data-w')))z=g;});if(z)zoom(z);}\n"
    "if(P.s){try{search(new RegExp(P.s));}catch(e){found.textContent='bad regex';}}\n"
    "]]></script>\n";

int cmd_flame(struct options *o)
{
	need_args(o, 1, 2, "DUMP, or BASE and NEW for a diff flame graph");
	refuse_terminal(o, "flame writes an SVG file", "-o FILE.svg");
	bool diff = o->nargs == 2;
	struct profile p;
	if (diff) {
		profile_load_diff(&p, o, o->args[0], o->args[1]);
	} else {
		load_profile(&p, o, 0);
	}
	enum sample_index s = o->sample;
	bool *marks = xcalloc(p.nchains + 1, sizeof(bool));
	if (!diff)
		growth_mark(&p, o, marks);
	struct trie t;
	trie_init(&t);
	t.n[0].key = "all";
	for (size_t i = 0; i < p.nchains; i++) {
		const struct pchain *c = &p.chains[i];
		if (c->hidden || !c->nframes)
			continue;
		/* base values (diff) and growth marks along the same path */
		size_t at = trie_add(&t, &p, 0, c, c->nframes - 1, o->lines, c->v, c->base,
		                     marks[i] ? c->v[s] : 0);
		if (marks[i]) {
			/* a growth chain's allocations get a frame of their own under its
			 * innermost function, so they show even where that function allocates
			 * much else */
			static const char growth_key[] = "(container growth)";
			at = trie_child(&t, at, growth_key, NULL);
			for (int q = 0; q < NSAMPLES; q++) {
				t.n[at].v[q] = sat_add(t.n[at].v[q], c->v[q]);
				t.n[at].base[q] = sat_add(t.n[at].base[q], c->base[q]);
			}
			t.n[at].growth_v = sat_add(t.n[at].growth_v, c->v[s]);
		}
	}
	/* highlight frames whose value is mostly growth, not every caller up to main */
	for (size_t i = 1; i < t.len; i++)
		t.n[i].growth = t.n[i].growth_v && t.n[i].growth_v * 2 >= t.n[i].v[s];
	trie_sort(&t, s);
	struct strbuf sb = STRBUF_INIT;
	struct output out;
	struct flame fl = {.sb = &sb, .out = &out, .t = &t, .s = s, .diff = diff};
	fl.width = xcalloc(t.len, sizeof(double));
	frame_widths(&fl);
	fl.total = fl.width[0] > 0 ? fl.width[0] : 1;
	fl.pct_of = (double)t.n[0].v[s];
	measure(&fl, 0, 0);
	int height = (fl.maxdepth + 1) * ROW + 70;
	out_open(&out, o);
	sb_addf(&sb,
	        "<?xml version=\"1.0\" standalone=\"no\"?>\n"
	        "<svg version=\"1.1\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
	        "xmlns=\"http://www.w3.org/2000/svg\">\n"
	        "<style>text{font-family:monospace;font-size:12px;fill:#000}g.f:hover rect"
	        "{stroke:#000;stroke-width:0.5}g.f{cursor:pointer}#reset,#search{cursor:pointer;"
	        "fill:#00c}</style>\n"
	        "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#f8f8f0\"/>\n"
	        "<text x=\"%d\" y=\"20\" text-anchor=\"middle\" style=\"font-size:15px\">",
	        WIDTH, height, WIDTH, height, WIDTH, height, WIDTH / 2);
	xml(&sb, diff ? "mapprof diff flame graph: " : "mapprof flame graph: ");
	const char *exe = strrchr(p.dumps[0]->exe, '/');
	xml(&sb, exe ? exe + 1 : p.dumps[0]->exe);
	sb_addf(&sb, " (%s", sample_names[s]);
	if (diff)
		sb_adds(&sb, "; red: grew in NEW, blue: shrank");
	else
		sb_adds(&sb, "; purple: container growth chains");
	sb_addf(&sb,
	        ")</text>\n<text id=\"reset\" x=\"10\" y=\"20\">Reset zoom</text>\n"
	        "<text id=\"search\" x=\"%d\" y=\"20\">Search</text>\n"
	        "<text id=\"found\" x=\"%d\" y=\"%d\"> </text>\n"
	        "<text id=\"details\" x=\"10\" y=\"%d\"> </text>\n",
	        WIDTH - 60, WIDTH - 200, height - 10, height - 10);
	emit_node(&fl, 0, 0.0, 0);
	sb_adds(&sb, script);
	sb_adds(&sb, "</svg>\n");
	out_close(&out, &sb);
	sb_release(&sb);
	free(fl.width);
	trie_free(&t);
	free(marks);
	profile_free(&p);
	return 0;
}
