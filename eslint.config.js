// `npm run lint`: ESLint + typescript-eslint (flat config). Type-aware, so a promise nobody awaits
// or catches is an error; the rest is the recommended sets with the noisy rules turned to warnings.
import js from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {
    ignores: ['**/node_modules/**', '**/dist/**', 'test-results/**', 'mirror-client/public/**', '.state/**', 'flows/src/**' /* Node-RED function bodies: top-level return */],
  },
  {
    files: ['**/*.ts', '**/*.mjs', '**/*.js'],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    languageOptions: {
      globals: { ...globals.node },
      parserOptions: { project: './tsconfig.eslint.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'warn',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true }],
      // `typeof import('@mirrormesh/hub')` types a module that is loaded on demand: allowed.
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports', disallowTypeAnnotations: false }],
      // prom-client calls collect() with `this` = the metric, so the owner is reached as `self`.
      '@typescript-eslint/no-this-alias': ['error', { allowedNames: ['self'] }],
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/await-thenable': 'error',
      'no-empty': ['error', { allowEmptyCatch: true }],
      'prefer-const': 'error',
      eqeqeq: ['error', 'smart'],
    },
  },
  {
    // ops may not load the hub at module load: a mirror Pi installs ops and the agent without it
    // (and without its engines). Types are fine (erased); values go through ops/src/hub.ts, which
    // imports on demand and explains a missing hub. config-doc.ts is a dev-machine docs script.
    files: ['ops/src/**/*.ts'],
    ignores: ['ops/src/hub.ts', 'ops/src/config-doc.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { paths: [{ name: '@mirrormesh/hub', allowTypeImports: true,
        message: 'a mirror install has no hub: import types only, and load it at run time with importHub() from ./hub.js' }] }],
    },
  },
)
