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
// Like the Locust version: recipe reads are Zipf over the ids in the order GET /api/v1/recipes returns them;
// searches are Zipf over bench/queries.txt; search, trending and recommendations run only when the API's OpenAPI
// document has them (weight 0 otherwise); requests are tagged name=<route template>; the thresholds are the
// design's targets (p50 < 100 ms, p95 < 500 ms, p99 < 1 s, errors < 1%), on load requests only (not setup's).

import http from 'k6/http';
import { check } from 'k6';
import { SharedArray } from 'k6/data';
import exec from 'k6/execution';

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
    trending: first((p) => p.includes('/trending')),
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
    });
  }
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

const actions = {
  recipe: (data) => getRecipe(data, data.ids[zipfRecipe(data)]),
  recipeCard: (data) => getRecipe(data, data.ids[zipfRecipe(data)], CARD_FIELDS),
  list: (data) => {
    const params = { limit: 20, fields: CARD_FIELDS };
    const roll = Math.random();
    if (roll < 0.15) params.cuisine = choice(CUISINES);
    else if (roll < 0.4) params.tag = choice(TAGS);
    else if (roll < 0.5) params.max_total_minutes = choice([20, 30, 45, 60]);
    const pages = weighted([[1, 60], [2, 25], [3, 15]]); // page 1, then follow next_cursor
    for (let page = 0; page < pages; page++) {
      const res = http.get(`${BASE_URL}${API}/recipes?${qs(params)}`, tagged(`${API}/recipes`, auth(data)));
      check(res, { 'list 200': (r) => r.status === 200 });
      const cursor = res.status === 200 ? res.json('next_cursor') : null;
      if (!cursor) return;
      params.cursor = cursor;
    }
  },
  search: (data) => {
    if (queryCdf === null) queryCdf = zipfCdf(QUERIES.length, 1.0);
    const path = data.endpoints.search;
    const url = `${BASE_URL}${path}?${qs({ q: QUERIES[pickIndex(queryCdf)], limit: 20 })}`;
    check(http.get(url, tagged(path, auth(data))), { 'search 200': (r) => r.status === 200 });
  },
  trending: (data) => {
    const template = data.endpoints.trending;
    const period = weighted([['day', 80], ['week', 20]]);
    const url = template.includes('{period}')
      ? template.replace('{period}', period)
      : `${template}?period=${period}`;
    check(http.get(`${BASE_URL}${url}`, tagged(template, auth(data))), { 'trending 200': (r) => r.status === 200 });
  },
  recommendations: (data) => {
    const template = data.endpoints.recommendations;
    const path = template.replace('{user_id}', session ? session.userId : 'me');
    const res = http.get(`${BASE_URL}${path}?limit=20`, tagged(template, auth(data)));
    check(res, { 'recommendations 200': (r) => r.status === 200 });
  },
  author: (data) => {
    const author = data.authors[zipfRecipe(data)];
    const res = http.get(`${BASE_URL}${API}/users/${author}`, tagged(`${API}/users/{user_id}`, auth(data)));
    check(res, { 'author 200': (r) => r.status === 200 });
  },
  signIn: (data) => {
    const res = http.post(
      `${BASE_URL}${API}/auth/token`,
      { username: choice(data.usernames), password: PASSWORD },
      tagged(`${API}/auth/token`),
    );
    check(res, { 'sign-in 200': (r) => r.status === 200 });
  },
  favorites: (data) => {
    const res = http.get(
      `${BASE_URL}${API}/users/me/favorites?limit=20&fields=${encodeURIComponent(CARD_FIELDS)}`,
      tagged(`${API}/users/me/favorites`, auth(data)),
    );
    check(res, { 'favorites 200': (r) => r.status === 200 });
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
  rate: (data) => {
    const body = { stars: weighted([[1, 3], [2, 5], [3, 15], [4, 37], [5, 40]]) };
    if (Math.random() < 0.3) body.review = choice(REVIEWS);
    const id = data.ids[zipfRecipe(data)];
    const headers = { ...auth(data), 'Content-Type': 'application/json' };
    const res = http.put(`${BASE_URL}${API}/recipes/${id}/rating`, JSON.stringify(body), tagged(`${RECIPE}/rating`, headers));
    check(res, { 'rating 200': (r) => r.status === 200 });
  },
  favorite: (data) => {
    const id = data.ids[zipfRecipe(data)];
    const res = http.put(`${BASE_URL}${API}/recipes/${id}/favorite`, null, tagged(`${RECIPE}/favorite`, auth(data)));
    check(res, { 'favorite 204': (r) => r.status === 204 });
  },
  createRecipe: (data) => {
    const shuffled = INGREDIENTS.slice().sort(() => Math.random() - 0.5);
    const body = {
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
    const headers = { ...auth(data), 'Content-Type': 'application/json' };
    const res = http.post(`${BASE_URL}${API}/recipes`, JSON.stringify(body), tagged(`${API}/recipes`, headers));
    check(res, { 'create 201': (r) => r.status === 201 });
    if (res.status === 201) myRecipes.push(res.json('id'));
  },
  editOwnRecipe: (data) => {
    // GET for the ETag, then PATCH with If-Match. Only this VU edits it, so a 412 would be a real lost update.
    if (myRecipes.length === 0) return actions.createRecipe(data);
    const id = choice(myRecipes);
    const current = http.get(`${BASE_URL}${API}/recipes/${id}`, tagged(RECIPE, auth(data)));
    if (current.status !== 200 || !current.headers.Etag) return;
    const headers = { ...auth(data), 'Content-Type': 'application/json', 'If-Match': current.headers.Etag };
    const body = JSON.stringify({ description: `Load-test recipe, edited ${new Date().toISOString()}.`, servings: 4 });
    const res = http.patch(`${BASE_URL}${API}/recipes/${id}`, body, tagged(RECIPE, headers));
    check(res, { 'edit 200': (r) => r.status === 200 });
  },
};

// Per 1000 iterations of each kind of user; the same as bench/locustfile.py. [action, weight, optional endpoint]
const ANONYMOUS = [
  ['recipe', 467], ['recipeCard', 60], ['list', 160], ['search', 140, 'search'], ['trending', 60, 'trending'],
  ['author', 110], ['signIn', 3],
];
const MEMBER = [
  ['recipe', 335], ['recipeCard', 40], ['list', 100], ['search', 100, 'search'], ['trending', 30, 'trending'],
  ['recommendations', 80, 'recommendations'], ['author', 50], ['favorites', 50], ['me', 30], ['unread', 40],
  ['rate', 60], ['favorite', 50], ['createRecipe', 15], ['editOwnRecipe', 20],
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
