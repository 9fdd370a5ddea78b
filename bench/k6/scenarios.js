// Potluck's load scenarios for k6: the two of shared/design/scalability-and-caching.md ("Load Testing & Capacity
// Planning"), with the same traffic mix as bench/locustfile.py (see its docstring for the reasoning).
//
//   k6 run bench/k6/scenarios.js                                       # constant_load as designed: 1000/s, 30 m
//   k6 run -e RATE=200 -e DURATION=60s bench/k6/scenarios.js           # constant_load at 200 iterations/s, 60 s
//   k6 run -e SCENARIO=spike_test -e SCALE=0.05 -e DURATION=90s bench/k6/scenarios.js
//   k6 run -e SCENARIO=all -e BASE_URL=https://staging.example.org bench/k6/scenarios.js   # spike after constant
//
// Environment (-e NAME=value):
//   BASE_URL          the load balancer (default http://127.0.0.1:8080)
//   SCENARIO          constant_load | spike_test | all (default constant_load; `all` starts spike_test when
//                     constant_load ends, and takes only SCALE: RATE, DURATION and STAGE_DURATIONS are ignored)
//   SCALE             factor on the design's rates (default 1): constant 1000/s; spike 100 -> 1000 -> 5000 -> 100/s
//   RATE              constant_load: iterations/s (default 1000 x SCALE); spike_test: the peak (default 5000 x SCALE,
//                     the other stages keep the design's proportions)
//   DURATION          constant_load: its length (default 30m); spike_test: the three ramps together, split 5:10:5
//                     as in the design (default 20m). "90s", "5m", "1h30m" or plain seconds.
//   STAGE_DURATIONS   spike_test: each ramp's length, "20s,40s,20s" (overrides DURATION)
//   MAX_ITERATION_S   seconds an iteration may take before the VU pool limits the rate (default 2): maxVUs =
//                     peak rate x this. preAllocatedVUs keeps the design's 100 VUs per 1000/s.
//   AUTH_SHARE        share of iterations by a logged-in user (default 0.2)
//   MEMBER_ACCOUNTS   seeded accounts logged in by setup() and shared by those iterations (default 20)
//   MAX_IDS           public recipe ids read by setup(), the Zipf universe (default 5000)
//   ZIPF_S            Zipf exponent of recipe popularity (default 1.1)
//
// Like the Locust version (its docstring has the mix and the reasoning): recipe reads are Zipf over the ids in the
// order GET /api/v1/recipes returns them; searches are Zipf over bench/queries.txt, 10% type-ahead, 25% with a
// filter or sort, some going on to page 2 or 3 by cursor; lists follow next_cursor; trending asks for the day,
// week or month; ~4% of iterations write (ratings, favorites, new recipes, If-Match edits), a few of them signed
// out (401). Search, trending searches, trending and recommendations run only when the API's OpenAPI document has
// them (weight 0 otherwise); requests are tagged name=<route template>; the thresholds are the design's targets
// (p50 < 100 ms, p95 < 500 ms, p99 < 1 s, errors < 1%), on load requests only (not setup's). A signed-out
// write's 401 and an edit's 412 (the VUs sharing an account edit its recipes concurrently) are expected answers:
// not in http_req_failed, counted in expected_outcomes{outcome}.

import http from 'k6/http';
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const API = '/api/v1';
const PASSWORD = 'potluck-demo';
const SCENARIO = __ENV.SCENARIO || 'constant_load';
// RATE and DURATION mean different things to the two scenarios: with SCENARIO=all only SCALE applies.
const TUNED = SCENARIO !== 'all';
const SCALE = number(__ENV.SCALE, 1);
const MAX_ITERATION_S = number(__ENV.MAX_ITERATION_S, 2);
const AUTH_SHARE = number(__ENV.AUTH_SHARE, 0.2);
const MEMBER_ACCOUNTS = Math.floor(number(__ENV.MEMBER_ACCOUNTS, 20));
const MAX_IDS = Math.floor(number(__ENV.MAX_IDS, 5000));
const ZIPF_S = number(__ENV.ZIPF_S, 1.1);
const CARD_FIELDS = 'id,title,image_url,rating,author.username';
const RECIPE = `${API}/recipes/{recipe_id}`;

// The design's scenarios.
const DESIGN = {
  constantRate: 1000,
  constantSeconds: 30 * 60,
  spikeStart: 100,
  spikeStages: [
    { seconds: 5 * 60, target: 1000 },
    { seconds: 10 * 60, target: 5000 },
    { seconds: 5 * 60, target: 100 },
  ],
  vusPerRate: 100 / 1000, // preAllocatedVUs: 100 at 1000/s
};

const QUERIES = new SharedArray('queries', () =>
  open('../queries.txt')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#')),
);

function number(value, fallback) {
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0) throw new Error(`not a positive number: ${value}`);
  return parsed;
}

// "90s", "5m", "1h30m", "1m30s" or plain seconds -> seconds.
function seconds(value) {
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value);
  const match = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$/.exec(value);
  if (!match || value === '') throw new Error(`not a duration: ${value}`);
  return Number(match[1] || 0) * 3600 + Number(match[2] || 0) * 60 + Number(match[3] || 0);
}

function vus(rate) {
  return {
    preAllocatedVUs: Math.max(1, Math.ceil(rate * DESIGN.vusPerRate)),
    maxVUs: Math.max(2, Math.ceil(rate * MAX_ITERATION_S)),
  };
}

function constantLoad() {
  const rate = __ENV.RATE && TUNED ? number(__ENV.RATE) : DESIGN.constantRate * SCALE;
  const duration = __ENV.DURATION && TUNED ? seconds(__ENV.DURATION) : DESIGN.constantSeconds;
  // k6 rates are integers per timeUnit: a rate below 100/s is given per minute to keep its fraction.
  const perMinute = rate < 100;
  return {
    executor: 'constant-arrival-rate',
    rate: Math.max(1, Math.round(perMinute ? rate * 60 : rate)),
    timeUnit: perMinute ? '1m' : '1s',
    duration: `${Math.round(duration)}s`,
    ...vus(rate),
    exec: 'traffic',
    tags: { test_scenario: 'constant_load' },
  };
}

function spikeTest(startTime) {
  const peak = Math.max(...DESIGN.spikeStages.map((s) => s.target));
  const factor = __ENV.RATE && TUNED ? number(__ENV.RATE) / peak : SCALE;
  const designTotal = DESIGN.spikeStages.reduce((sum, s) => sum + s.seconds, 0);
  let lengths = DESIGN.spikeStages.map((s) => s.seconds);
  if (__ENV.STAGE_DURATIONS && TUNED) {
    lengths = __ENV.STAGE_DURATIONS.split(',').map((s) => seconds(s.trim()));
    if (lengths.length === 1) lengths = DESIGN.spikeStages.map(() => lengths[0]);
    if (lengths.length !== DESIGN.spikeStages.length) throw new Error('STAGE_DURATIONS needs 3 durations');
  } else if (__ENV.DURATION && TUNED) {
    lengths = lengths.map((s) => (s * seconds(__ENV.DURATION)) / designTotal);
  }
  // Per minute throughout when the scaled rates are small, so their fractions survive the rounding.
  const perMinute = peak * factor < 100;
  const unit = perMinute ? 60 : 1;
  const scenario = {
    executor: 'ramping-arrival-rate',
    startRate: Math.max(1, Math.round(DESIGN.spikeStart * factor * unit)),
    timeUnit: perMinute ? '1m' : '1s',
    stages: DESIGN.spikeStages.map((s, i) => ({
      duration: `${Math.max(1000, Math.round(lengths[i] * 1000))}ms`,
      target: Math.max(1, Math.round(s.target * factor * unit)),
    })),
    ...vus(peak * factor),
    exec: 'traffic',
    tags: { test_scenario: 'spike_test' },
  };
  if (startTime) scenario.startTime = startTime;
  return scenario;
}

function scenarios() {
  if (SCENARIO === 'constant_load') return { constant_load: constantLoad() };
  if (SCENARIO === 'spike_test') return { spike_test: spikeTest() };
  if (SCENARIO === 'all') {
    const first = constantLoad();
    return { constant_load: first, spike_test: spikeTest(first.duration) };
  }
  throw new Error(`SCENARIO must be constant_load, spike_test or all, not ${SCENARIO}`);
}

export const options = {
  scenarios: scenarios(),
  thresholds: {
    'http_req_duration{traffic:load}': ['p(50)<100', 'p(95)<500', 'p(99)<1000'],
    'http_req_failed{traffic:load}': ['rate<0.01'],
    // Per endpoint, to see which one breaks first (shown in the summary).
    [`http_req_duration{name:${RECIPE}}`]: ['p(95)<500'],
    [`http_req_duration{name:${API}/recipes}`]: ['p(95)<500'],
    [`http_req_duration{name:${API}/users/{user_id}}`]: ['p(95)<500'],
    checks: ['rate>0.99'],
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
  setupTimeout: '5m',
  discardResponseBodies: false,
};

// ----------------------------------------------------------------------------------------------------- setup

function findPaths(paths) {
  const gets = Object.keys(paths).filter((p) => p.startsWith(API) && paths[p].get);
  const first = (match) => gets.filter(match).sort((a, b) => a.length - b.length)[0] || null;
  return {
    search: first((p) => p.replace(/\/+$/, '').endsWith('/search')),
    search_trending: first((p) => p.replace(/\/+$/, '').endsWith('/search/trending')),
    trending: first((p) => p.includes('/trending') && !p.includes('/search/')),
    recommendations: first((p) => p.includes('recommend')),
  };
}

const SETUP = { tags: { traffic: 'setup' } };

export function setup() {
  const openapi = http.get(`${BASE_URL}/openapi.json`, SETUP);
  if (openapi.status !== 200) throw new Error(`GET ${BASE_URL}/openapi.json: HTTP ${openapi.status}`);
  const endpoints = findPaths(openapi.json('paths') || {});

  const ids = [];
  const authors = [];
  const usernames = [];
  const seen = {};
  let cursor = null;
  while (ids.length < MAX_IDS) {
    const query = `fields=id,author.id,author.username&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = http.get(`${BASE_URL}${API}/recipes?${query}`, SETUP);
    if (page.status !== 200) throw new Error(`GET ${API}/recipes: HTTP ${page.status}`);
    const body = page.json();
    for (const item of body.items) {
      ids.push(item.id);
      authors.push(item.author.id);
      if (!seen[item.author.username]) {
        seen[item.author.username] = true;
        usernames.push(item.author.username);
      }
    }
    cursor = body.next_cursor;
    if (!cursor) break;
  }
  ids.length = Math.min(ids.length, MAX_IDS);
  authors.length = ids.length;
  if (ids.length === 0) throw new Error('no public recipe: seed the database first');

  const accounts = [];
  for (const username of AUTH_SHARE > 0 ? usernames.slice(0, MEMBER_ACCOUNTS) : []) {
    const login = http.post(`${BASE_URL}${API}/auth/token`, { username, password: PASSWORD }, SETUP);
    if (login.status !== 200) continue;
    const tokens = login.json();
    const me = http.get(`${BASE_URL}${API}/users/me`, {
      headers: { Authorization: `Bearer ${tokens.access_token}` },
      tags: SETUP.tags,
    });
    if (me.status !== 200) continue;
    accounts.push({
      username,
      userId: me.json('id'),
      accessToken: tokens.access_token,
      refreshToken: tokens.refresh_token,
      refreshAt: Date.now() + (tokens.expires_in * 1000 * 2) / 3,
      recipes: [], // its public recipes among the ids: what the VUs using this account edit
    });
  }
  const byAuthor = {};
  for (const account of accounts) byAuthor[account.userId] = account;
  ids.forEach((id, i) => {
    if (byAuthor[authors[i]]) byAuthor[authors[i]].recipes.push(id);
  });
  console.log(
    `setup: ${ids.length} recipe ids, ${usernames.length} usernames, ${accounts.length} accounts, ` +
      `${QUERIES.length} queries, optional endpoints ${JSON.stringify(endpoints)}`,
  );
  return { ids, authors, usernames, accounts, endpoints };
}

// --------------------------------------------------------------------------------------------- per-VU state

let recipeCdf = null;
let queryCdf = null;
let session = null; // this VU's copy of its account's tokens (refreshed by this VU)
const etags = {};
const myRecipes = [];

function zipfCdf(n, s) {
  const cdf = new Array(n);
  let total = 0;
  for (let k = 1; k <= n; k++) {
    total += 1 / Math.pow(k, s);
    cdf[k - 1] = total;
  }
  return cdf;
}

function pickIndex(cdf) {
  const x = Math.random() * cdf[cdf.length - 1];
  let lo = 0;
  let hi = cdf.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (cdf[mid] > x) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

function choice(items) {
  return items[Math.floor(Math.random() * items.length)];
}

function weighted(pairs) {
  const total = pairs.reduce((sum, [, w]) => sum + w, 0);
  let x = Math.random() * total;
  for (const [item, w] of pairs) {
    x -= w;
    if (x < 0) return item;
  }
  return pairs[pairs.length - 1][0];
}

function tagged(name, headers) {
  return { headers: headers || {}, tags: { name, traffic: 'load' } };
}

function qs(params) {
  return Object.keys(params)
    .map((k) => `${encodeURIComponent(k)}=${encodeURIComponent(params[k])}`)
    .join('&');
}

// ------------------------------------------------------------------------------------------------- actions

const CUISINES = ['italian', 'mexican', 'american', 'chinese', 'indian', 'japanese', 'thai', 'french', 'greek', 'korean'];
const TAGS = ['weeknight', 'comfort-food', 'healthy', 'quick', 'vegetarian', 'spicy', 'dinner', 'family-style', 'dessert'];
const INGREDIENTS = [
  ['chicken thighs', 600, 'g'],
  ['garlic', 3, 'clove'],
  ['onion', 1, null],
  ['olive oil', 2, 'tbsp'],
  ['canned tomatoes', 400, 'g'],
  ['basil', 10, 'g'],
  ['long-grain rice', 300, 'g'],
  ['lime', 1, null],
  ['ginger', 20, 'g'],
  ['soy sauce', 2, 'tbsp'],
  ['spinach', 200, 'g'],
  ['chickpeas', 400, 'g'],
];
const STEPS = [
  'Heat the oil in a large pan over medium heat.',
  'Add the onion and garlic and cook until soft, about 5 minutes.',
  'Stir in the remaining ingredients and bring to a simmer.',
  'Cook, covered, for 20 minutes, stirring now and then.',
  'Season to taste and serve hot.',
];
const REVIEWS = ['Loved it, will make again.', 'Good, but needed more salt.', 'A weeknight staple now.', 'Too spicy for us.'];

function zipfRecipe(data) {
  if (recipeCdf === null) recipeCdf = zipfCdf(data.ids.length, ZIPF_S);
  return pickIndex(recipeCdf);
}

function auth(data) {
  if (session === null) return {};
  if (Date.now() > session.refreshAt) {
    const res = http.post(
      `${BASE_URL}${API}/auth/refresh`,
      JSON.stringify({ refresh_token: session.refreshToken }),
      tagged(`${API}/auth/refresh`, { 'Content-Type': 'application/json' }),
    );
    if (res.status === 200) {
      const tokens = res.json();
      session = {
        ...session,
        accessToken: tokens.access_token,
        refreshToken: tokens.refresh_token,
        refreshAt: Date.now() + (tokens.expires_in * 1000 * 2) / 3,
      };
    }
  }
  return { Authorization: `Bearer ${session.accessToken}` };
}

function getRecipe(data, id, fields) {
  const headers = auth(data);
  if (!fields && etags[id] && Math.random() < 0.5) headers['If-None-Match'] = etags[id];
  const url = `${BASE_URL}${API}/recipes/${id}${fields ? `?fields=${encodeURIComponent(fields)}` : ''}`;
  const res = http.get(url, tagged(RECIPE, headers));
  check(res, { 'recipe 200/304': (r) => r.status === 200 || r.status === 304 });
  if (!fields && res.status === 200 && res.headers.Etag) etags[id] = res.headers.Etag;
  return res;
}

// Answers a client is built for (a signed-out write's 401, an edit's 412): not failures in http_req_failed, and
// counted in expected_outcomes{outcome}. Every other status from 400 on is a failure.
const expectedOutcomes = new Counter('expected_outcomes');
const OK_OR_401 = http.expectedStatuses({ min: 200, max: 399 }, 401);
const OK_OR_412 = http.expectedStatuses({ min: 200, max: 399 }, 412);

const SEARCH_FILTERS = [
  ['cuisine', CUISINES],
  ['tag', TAGS],
  ['max_total_minutes', ['20', '30', '45', '60']],
  ['min_rating', ['3.5', '4', '4.5']],
  ['ingredient', ['garlic', 'chickpeas', 'eggs', 'chicken thighs', 'cilantro']],
  ['exclude_ingredient', ['shrimp', 'bacon', 'cilantro', 'eggs']],
  ['sort', ['rating', 'newest']],
];

// Page 1, then up to `pages` - 1 more by next_cursor (keyset cursors are the only way to page).
function followPages(data, path, params, name, pages) {
  const query = { ...params };
  for (let page = 0; page < pages; page++) {
    const res = http.get(`${BASE_URL}${path}?${qs(query)}`, tagged(name, auth(data)));
    check(res, { [`${name} 200`]: (r) => r.status === 200 });
    const cursor = res.status === 200 ? res.json('next_cursor') : null;
    if (!cursor) return;
    query.cursor = cursor;
  }
}

function newRecipe() {
  const shuffled = INGREDIENTS.slice().sort(() => Math.random() - 0.5);
  return {
    title: `${choice(['Easy', 'Weeknight', 'Smoky', 'Herby', 'Simple'])} ${choice(['Chicken Rice Bowl', 'Chickpea Curry', 'Tomato Stew', 'Ginger Stir-Fry'])}`,
    description: 'Load-test recipe: a simple dish from the pantry.',
    cuisine: choice(CUISINES),
    prep_minutes: choice([10, 15, 20]),
    cook_minutes: choice([15, 25, 40]),
    servings: choice([2, 4, 6]),
    difficulty: choice(['easy', 'medium']),
    is_public: Math.random() < 0.9,
    ingredients: shuffled.slice(0, 4 + Math.floor(Math.random() * 5)).map(([name, quantity, unit]) => ({ name, quantity, unit })),
    steps: STEPS.slice(0, 3 + Math.floor(Math.random() * 3)),
    tags: TAGS.slice().sort(() => Math.random() - 0.5).slice(0, 2),
  };
}

// A rating, a favorite or a new recipe. Signed out (headers without Authorization) the answer is 401, expected.
function write(data, kind, headers, signedOut) {
  const params = tagged(
    kind === 'rating' ? `${RECIPE}/rating` : kind === 'favorite' ? `${RECIPE}/favorite` : `${API}/recipes`,
    { ...headers, 'Content-Type': 'application/json' },
  );
  if (signedOut) params.responseCallback = OK_OR_401;
  const id = data.ids[zipfRecipe(data)];
  let res;
  if (kind === 'rating') {
    const body = { stars: weighted([[1, 3], [2, 5], [3, 15], [4, 37], [5, 40]]) };
    if (Math.random() < 0.3) body.review = choice(REVIEWS);
    res = http.put(`${BASE_URL}${API}/recipes/${id}/rating`, JSON.stringify(body), params);
  } else if (kind === 'favorite') {
    const method = signedOut || Math.random() < 0.75 ? 'PUT' : 'DELETE';
    res = http.request(method, `${BASE_URL}${API}/recipes/${id}/favorite`, null, params);
  } else {
    res = http.post(`${BASE_URL}${API}/recipes`, JSON.stringify(newRecipe()), params);
  }
  if (signedOut) {
    if (res.status === 401) expectedOutcomes.add(1, { outcome: 'signed-out write answered 401' });
    check(res, { 'signed-out write 401': (r) => r.status === 401 });
  } else {
    check(res, { [`${kind} 2xx`]: (r) => r.status >= 200 && r.status < 300 });
  }
  return res;
}

function login(data) {
  const res = http.post(
    `${BASE_URL}${API}/auth/token`,
    { username: choice(data.usernames), password: PASSWORD },
    tagged(`${API}/auth/token`),
  );
  check(res, { 'sign-in 200': (r) => r.status === 200 });
  return res.status === 200 ? res.json('access_token') : null;
}

const actions = {
  recipe: (data) => getRecipe(data, data.ids[zipfRecipe(data)]),
  recipeCard: (data) => getRecipe(data, data.ids[zipfRecipe(data)], CARD_FIELDS),
  list: (data) => {
    const params = { limit: 20, fields: CARD_FIELDS };
    const roll = Math.random();
    if (roll < 0.15) params.cuisine = choice(CUISINES);
    else if (roll < 0.4) params.tag = choice(TAGS);
    else if (roll < 0.5) params.max_total_minutes = choice([20, 30, 45, 60]);
    followPages(data, `${API}/recipes`, params, `${API}/recipes`, weighted([[1, 60], [2, 25], [3, 15]]));
  },
  search: (data) => {
    // 10% type-ahead, 25% with one filter or sort; 20% of the others go on to page 2 or 3.
    if (queryCdf === null) queryCdf = zipfCdf(QUERIES.length, 1.0);
    const path = data.endpoints.search;
    const query = QUERIES[pickIndex(queryCdf)];
    const params = { q: query, limit: 20, fields: CARD_FIELDS };
    const roll = Math.random();
    let pages = weighted([[1, 80], [2, 15], [3, 5]]);
    if (roll < 0.1) {
      const low = Math.min(3, query.length);
      const cut = low + Math.floor(Math.random() * (query.length - low + 1));
      params.q = query.slice(0, cut).replace(/[ -]+$/, '') || query;
      params.prefix = 'true';
      params.limit = 8;
      pages = 1;
    } else if (roll < 0.35) {
      const [key, values] = choice(SEARCH_FILTERS);
      params[key] = choice(values);
    }
    followPages(data, path, params, path, pages);
  },
  searchTrending: (data) => {
    const path = data.endpoints.search_trending;
    check(http.get(`${BASE_URL}${path}?limit=10`, tagged(path, auth(data))), {
      'trending searches 200': (r) => r.status === 200,
    });
  },
  trending: (data) => {
    const template = data.endpoints.trending;
    const period = weighted([['day', 50], ['week', 35], ['month', 15]]);
    const params = { limit: 20, fields: CARD_FIELDS };
    if (!template.includes('{period}')) params.period = period;
    const url = `${BASE_URL}${template.replace('{period}', period)}?${qs(params)}`;
    check(http.get(url, tagged(template, auth(data))), { 'trending 200': (r) => r.status === 200 });
  },
  recommendations: (data) => {
    const template = data.endpoints.recommendations;
    const path = template.replace('{user_id}', session ? session.userId : 'me');
    const res = http.get(`${BASE_URL}${path}?${qs({ limit: 20, fields: CARD_FIELDS })}`, tagged(template, auth(data)));
    check(res, { 'recommendations 200': (r) => r.status === 200 });
  },
  author: (data) => {
    // A profile; on 40% of visits also the author's recipes (the profile page's list).
    const author = data.authors[zipfRecipe(data)];
    const res = http.get(`${BASE_URL}${API}/users/${author}`, tagged(`${API}/users/{user_id}`, auth(data)));
    check(res, { 'author 200': (r) => r.status === 200 });
    if (Math.random() < 0.4) {
      const params = { author, limit: 20, fields: CARD_FIELDS };
      followPages(data, `${API}/recipes`, params, `${API}/recipes`, weighted([[1, 80], [2, 20]]));
    }
  },
  signIn: (data) => {
    login(data);
  },
  writeSignedOut: (data) => {
    // Rate, favorite or post signed out: 401 (expected); half of them then sign in and write again.
    const kind = weighted([['rating', 60], ['favorite', 25], ['recipe', 15]]);
    write(data, kind, {}, true);
    if (Math.random() < 0.5) {
      const token = login(data);
      if (token) write(data, kind, { Authorization: `Bearer ${token}` }, false);
    }
  },
  favorites: (data) => {
    const params = { limit: 20, fields: CARD_FIELDS };
    followPages(data, `${API}/users/me/favorites`, params, `${API}/users/me/favorites`, weighted([[1, 85], [2, 15]]));
  },
  me: (data) => {
    check(http.get(`${BASE_URL}${API}/users/me`, tagged(`${API}/users/me`, auth(data))), {
      'me 200': (r) => r.status === 200,
    });
  },
  unread: (data) => {
    const url = `${BASE_URL}${API}/notifications/unread-count`;
    check(http.get(url, tagged(`${API}/notifications/unread-count`, auth(data))), {
      'unread 200': (r) => r.status === 200,
    });
  },
  rate: (data) => write(data, 'rating', auth(data), false),
  favorite: (data) => write(data, 'favorite', auth(data), false),
  createRecipe: (data) => {
    const res = write(data, 'recipe', auth(data), false);
    if (res.status === 201) myRecipes.push(res.json('id'));
  },
  editOwnRecipe: (data) => {
    // GET for the ETag, PATCH with If-Match; on 412 read again and retry once. The account's recipes (from
    // setup) are edited by every VU that uses the account, so a 412 is an expected answer, counted apart.
    const pool = session.recipes.concat(myRecipes);
    if (pool.length === 0) return actions.createRecipe(data);
    const id = choice(pool);
    const body = { description: `Load-test recipe, edited ${new Date().toISOString()}.` };
    body[choice(['servings', 'cook_minutes'])] = choice([2, 4, 6, 8]);
    if (Math.random() < 0.2) body.tags = TAGS.slice().sort(() => Math.random() - 0.5).slice(0, 2);
    for (let attempt = 1; attempt <= 2; attempt++) {
      const current = http.get(`${BASE_URL}${API}/recipes/${id}`, tagged(RECIPE, auth(data)));
      if (current.status !== 200 || !current.headers.Etag) return;
      const params = tagged(RECIPE, { ...auth(data), 'Content-Type': 'application/json', 'If-Match': current.headers.Etag });
      params.responseCallback = OK_OR_412;
      const res = http.patch(`${BASE_URL}${API}/recipes/${id}`, JSON.stringify(body), params);
      if (res.status !== 412) {
        check(res, { 'edit 200': (r) => r.status === 200 });
        return;
      }
      expectedOutcomes.add(1, { outcome: `edit answered 412 (attempt ${attempt})` });
    }
  },
};

// Per 1000 iterations of each kind of user; the same as bench/locustfile.py. [action, weight, optional endpoint]
const ANONYMOUS = [
  ['recipe', 444], ['recipeCard', 60], ['list', 150], ['search', 150, 'search'],
  ['searchTrending', 15, 'search_trending'], ['trending', 60, 'trending'], ['author', 115], ['signIn', 2],
  ['writeSignedOut', 4],
];
const MEMBER = [
  ['recipe', 300], ['recipeCard', 40], ['list', 90], ['search', 100, 'search'],
  ['searchTrending', 10, 'search_trending'], ['trending', 30, 'trending'],
  ['recommendations', 80, 'recommendations'], ['author', 50], ['favorites', 50], ['me', 25], ['unread', 40],
  ['rate', 80], ['favorite', 70], ['createRecipe', 10], ['editOwnRecipe', 25],
];

function available(mix, endpoints) {
  return mix.filter(([, , needs]) => !needs || endpoints[needs]).map(([name, weight]) => [name, weight]);
}

let mixes = null;

export function traffic(data) {
  if (mixes === null) {
    mixes = { anonymous: available(ANONYMOUS, data.endpoints), member: available(MEMBER, data.endpoints) };
  }
  const member = data.accounts.length > 0 && Math.random() < AUTH_SHARE;
  if (member) {
    if (session === null) session = { ...data.accounts[exec.vu.idInTest % data.accounts.length] };
    actions[weighted(mixes.member)](data);
  } else {
    const saved = session;
    session = null; // anonymous: no Authorization header
    actions[weighted(mixes.anonymous)](data);
    session = saved;
  }
}

export default traffic;
