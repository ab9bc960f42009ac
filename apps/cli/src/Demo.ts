/**
 * The demo dataset: accounts and contacts that look like a real CRM's, generated from a seed so
 * every run loads the same data.
 *
 * @since 0.1.0
 */

const firstNames = [
  "Ada",
  "Alan",
  "Grace",
  "Linus",
  "Margaret",
  "Dennis",
  "Barbara",
  "Ken",
  "Frances",
  "Edsger",
  "Radia",
  "Donald",
  "Hedy",
  "John",
  "Katherine",
  "Tim",
  "Annie",
  "Guido",
  "Sophie",
  "Bjarne",
  "Lynn",
  "Niklaus",
  "Joan",
  "Anders",
  "Mary",
  "James",
  "Elena",
  "Yukihiro",
  "Karen",
  "Brendan",
  "Shafi",
  "Leslie",
  "Carol",
  "Robin",
  "Fatima",
  "Omar",
  "Priya",
  "Wei",
  "Amara",
  "Mateo"
]
const lastNames = [
  "Lovelace",
  "Turing",
  "Hopper",
  "Torvalds",
  "Hamilton",
  "Ritchie",
  "Liskov",
  "Thompson",
  "Allen",
  "Dijkstra",
  "Perlman",
  "Knuth",
  "Lamarr",
  "McCarthy",
  "Johnson",
  "Berners-Lee",
  "Easley",
  "van Rossum",
  "Wilson",
  "Stroustrup",
  "Conway",
  "Wirth",
  "Clarke",
  "Hejlsberg",
  "Shaw",
  "Gosling",
  "Popescu",
  "Matsumoto",
  "Sparck Jones",
  "Eich",
  "Goldwasser",
  "Lamport",
  "Shaw",
  "Milner",
  "Haddad",
  "Nasser",
  "Raman",
  "Zhang",
  "Okafor",
  "Garcia"
]
const jobTitles = [
  "Buyer",
  "Purchasing Manager",
  "IT Director",
  "Office Manager",
  "CFO",
  "Operations Lead",
  "Sales Engineer",
  "Procurement Analyst",
  "Head of Facilities",
  "Account Executive"
]
const cities = [
  "Seattle",
  "Redmond",
  "Dublin",
  "Amsterdam",
  "Singapore",
  "Sydney",
  "Toronto",
  "Berlin",
  "Nairobi",
  "São Paulo"
]
const companyWords = [
  "Contoso",
  "Fabrikam",
  "Northwind",
  "Adventure Works",
  "Tailspin",
  "Wingtip",
  "Litware",
  "Proseware",
  "Woodgrove",
  "Alpine Ski House",
  "Coho Winery",
  "Lamna",
  "Trey Research",
  "Fourth Coffee",
  "Relecloud",
  "VanArsdel"
]
const companySuffixes = ["Ltd", "Inc", "Group", "Holdings", "Partners", "Labs", "Trading", "Systems"]
const industryCodes = [1, 2, 3, 6, 7, 25]

/**
 * A small deterministic PRNG (mulberry32): the same seed gives the same dataset.
 *
 * @since 0.1.0
 */
export const random = (seed: number) => {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6D2B79F5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (max: number) => Math.floor(next() * max),
    pick: <A>(items: ReadonlyArray<A>): A => items[Math.floor(next() * items.length)]!
  }
}

const slug = (text: string) => text.toLowerCase().normalize("NFD").replace(/[^a-z0-9]+/g, "")

/**
 * `count` accounts with names, account numbers (the alternate key), phones, cities, industries.
 *
 * @since 0.1.0
 */
export const accounts = (count: number, seed = 1): Array<Record<string, unknown>> => {
  const rng = random(seed)
  return Array.from({ length: count }, (_, i) => {
    const name = `${rng.pick(companyWords)} ${rng.pick(companySuffixes)} ${i + 1}`
    return {
      name,
      accountnumber: `ACC-${String(i + 1).padStart(6, "0")}`,
      telephone1: `+1-425-555-${String(rng.int(10000)).padStart(4, "0")}`,
      emailaddress1: `info@${slug(name)}.example.com`,
      address1_city: rng.pick(cities),
      industrycode: rng.pick(industryCodes),
      numberofemployees: 5 + rng.int(5000)
    }
  })
}

/**
 * `count` contacts, each linked to one of `accountIds` through the polymorphic
 * `parentcustomerid` lookup.
 *
 * @since 0.1.0
 */
export function* contacts(
  count: number,
  accountIds: ReadonlyArray<string>,
  seed = 2
): Generator<Record<string, unknown>> {
  const rng = random(seed)
  for (let i = 0; i < count; i++) {
    const firstname = rng.pick(firstNames)
    const lastname = rng.pick(lastNames)
    yield {
      firstname,
      lastname,
      emailaddress1: `${slug(firstname)}.${slug(lastname)}.${i + 1}@example.com`,
      telephone1: `+1-206-555-${String(rng.int(10000)).padStart(4, "0")}`,
      mobilephone: `+1-206-556-${String(rng.int(10000)).padStart(4, "0")}`,
      jobtitle: rng.pick(jobTitles),
      address1_city: rng.pick(cities),
      creditlimit: 1000 * (1 + rng.int(50)),
      donotemail: rng.next() < 0.1,
      ...(accountIds.length > 0 ? { "parentcustomerid_account@odata.bind": `/accounts(${rng.pick(accountIds)})` } : {})
    }
  }
}
